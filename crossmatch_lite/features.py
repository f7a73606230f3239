"""Feature pyramids: the perturbation CrossMatch applies to them, and batching them.

Shared by the 2D UNet and the 3D VNet: both split into `encode` (a list of feature maps,
shallow to deep) and `decode`, so the step can decode the same encoder features several
ways (clean, weak dropout, strong dropout) with one decoder.
"""
from __future__ import annotations

import torch

from .dims import Dims


def drop_features(feats: list[torch.Tensor], rate: float) -> list[torch.Tensor]:
    """Channel dropout on every encoder level (Dropout2d for 2D maps, Dropout3d for 3D).

    Always active (training=True), also when the model is in eval mode: in the official
    code the perturbation modules are not registered submodules, so model.eval() never
    switches them off, and the no-gradient pass on the CutMix source is perturbed too.
    """
    return [Dims.of_tensor(f).channel_dropout(f, rate, training=True) for f in feats]


def cat_features(*groups: list[torch.Tensor]) -> list[torch.Tensor]:
    """Stack several feature pyramids along the batch so one decoder call serves them all."""
    return [torch.cat(level, dim=0) for level in zip(*groups)]


def decode_groups(model, groups: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Decode several feature pyramids in one decoder call (so BatchNorm normalises them
    as one batch, as the official code does); return one output (B_i, K, *spatial) each."""
    sizes = [g[0].shape[0] for g in groups]
    return list(model.decode(cat_features(*groups)).split(sizes, dim=0))
