"""Reproducible pseudo-random numbers from integer arithmetic alone.

The LA fixture's network has 592,218 parameters (2.4 MB in float32), too many to store.
Its initial weights are instead drawn by `lattice_init` in both the fixture maker and the
test: an integer hash of each element's index, computed in int64 with every product below
2**63, so the values do not depend on torch's random generators, its version or the
device. The fixture keeps a digest of the weights, and the test checks it.
"""
from __future__ import annotations

import hashlib
import math
import zlib

import torch
from torch import nn

_M = 2 ** 31
_ROUNDS = (1_103_515_245, 1_664_525, 1_013_904_223, 22_695_477)


def uniform(n: int, salt: int) -> torch.Tensor:
    """n float64 numbers in [0, 1), a fixed function of (index, salt)."""
    x = (torch.arange(n, dtype=torch.int64) + (salt % _M) * 1_000_003 + 12_345) % _M
    for a in _ROUNDS:
        x = (x * a + 12_345) % _M  # x < 2**31 and a < 2**31: the product stays below 2**62
        x = x ^ (x >> 13)
    return x.double() / _M


def signs(n: int, salt: int) -> torch.Tensor:
    """n numbers in {-1, +1} (float64): the fixed directions the fixture projects tensors on."""
    return (uniform(n, salt) < 0.5).double() * 2 - 1


def lattice_init(model: nn.Module, gains: dict[str, float] | None = None) -> None:
    """Every convolution's weight and bias uniform in +-1/sqrt(fan_in) (PyTorch's default
    bounds), the weight's times gains[module name] where given; BatchNorm affine 1 and 0 as PyTorch
    leaves it. Each tensor's numbers are keyed on its state_dict name (crc32), so two
    networks whose state_dict keys and shapes agree get the same weights, whatever the
    order their modules were built in."""
    gains = gains or {}
    convs = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, convs):
                continue
            fan_in = m.weight[0].numel()  # torch's _calculate_fan_in: size(1) * receptive field
            bound = 1.0 / math.sqrt(fan_in)
            for suffix, p, gain in (("weight", m.weight, gains.get(name, 1.0)), ("bias", m.bias, 1.0)):
                u = uniform(p.numel(), zlib.crc32(f"{name}.{suffix}".encode())).view(p.shape)
                p.copy_(((2 * u - 1) * bound * gain).to(p.dtype))


def digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the float32 bytes of every floating tensor, in key order."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        if v.is_floating_point():
            h.update(k.encode())
            h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
