"""Parameter names of the official CrossMatch ACDC UNet, mapped to ours.

Lets a state dict of the official code (a `best.pth`/`latest.pth` of its training script,
or the weights the fidelity fixture records) load into `crossmatch_lite.models.unet.UNet` with
the same values, and back. The official model nests its blocks more deeply
(`encoder.down1.maxpool_conv.1.conv_conv.0.weight`); ours are flatter (`downs.0.1.0.weight`).
"""
from __future__ import annotations

import re

import torch

_RULES = (  # (official pattern, ours), applied to the part before the parameter name
    (r"^encoder\.in_conv\.conv_conv\.(\d+)$", lambda m: f"inc.{m[1]}"),
    (r"^encoder\.down(\d)\.maxpool_conv\.1\.conv_conv\.(\d+)$", lambda m: f"downs.{int(m[1]) - 1}.1.{m[2]}"),
    (r"^decoder\.up(\d)\.conv1x1$", lambda m: f"ups.{int(m[1]) - 1}.up.0"),  # bilinear up-step
    (r"^decoder\.up(\d)\.up$", lambda m: f"ups.{int(m[1]) - 1}.up"),  # transposed-convolution up-step
    (r"^decoder\.up(\d)\.conv\.conv_conv\.(\d+)$", lambda m: f"ups.{int(m[1]) - 1}.conv.{m[2]}"),
    (r"^decoder\.out_conv$", lambda m: "head"),
)


def official_to_ours(name: str) -> str:
    """`encoder.down1.maxpool_conv.1.conv_conv.0.weight` -> `downs.0.1.0.weight`."""
    name = name.removeprefix("module.")  # checkpoints of the DistributedDataParallel wrapper
    module, _, leaf = name.rpartition(".")
    for pattern, target in _RULES:
        m = re.match(pattern, module)
        if m:
            return f"{target(m)}.{leaf}"
    raise KeyError(f"{name!r} is not a parameter of the official CrossMatch ACDC UNet")


def from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {official_to_ours(k): v for k, v in state.items()}
