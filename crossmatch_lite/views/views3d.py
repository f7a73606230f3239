"""Image-level views of 3D volumes (LA), drawn as the official LA data loader draws them.

    weak    RandomRotFlip then RandomCrop: a quarter turn k ~ {0..3} in the (x, y) plane,
            a flip of x or y, then a crop of data.patch voxels (volumes no larger than the
            patch along an axis are zero-padded first, as the official crop does). Done
            per sample with torch on the training device.
    strong  torchio, the library the official code uses: with probability bias_gamma_p
            RandomBiasField(bias_coefficient) then RandomGamma(log_gamma); with probability
            blur_p RandomBlur(blur_sigma). torchio draws its parameters from torch's global
            generator; each sample gets a seed from the run's augmentation generator, so a
            run's views still follow its seed and resume exactly.
    boxes   a CutMix box of a random share of the patch's volume, with probability cutmix_p.

Volumes are (C, X, Y, Z) with z the slice axis, as in the official HDF5 files.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import ImagePerturbConfig


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform in [low, high), like np.random.randint."""
    return int(torch.randint(low, high, (1,), generator=gen))


def _rand(gen: torch.Generator) -> float:
    return float(torch.rand(1, generator=gen))


def weak_view(volumes: list[torch.Tensor], labels: list[torch.Tensor] | None, patch: tuple[int, int, int],
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, C, *patch) crops of rotated/flipped volumes, with their (B, *patch) labels."""
    images, masks = [], []
    for i, vol in enumerate(volumes):
        lab = labels[i] if labels is not None else None
        k, axis = _randint(gen, 0, 4), _randint(gen, 0, 2)
        vol = torch.rot90(vol, k, dims=(1, 2)).flip(1 + axis)
        lab = None if lab is None else torch.rot90(lab, k, dims=(0, 1)).flip(axis)
        shape = vol.shape[1:]
        if any(s <= p for s, p in zip(shape, patch)):
            # The official pad: (p - s) // 2 + 3 on both sides of any axis no larger than the patch.
            pads = [max((p - s) // 2 + 3, 0) for s, p in zip(shape, patch)]
            flat = [v for pad in reversed(pads) for v in (pad, pad)]
            vol = F.pad(vol, flat)
            lab = None if lab is None else F.pad(lab, flat)
            shape = vol.shape[1:]
        starts = [_randint(gen, 0, s - p) if s > p else 0 for s, p in zip(shape, patch)]
        sl = tuple(slice(a, a + p) for a, p in zip(starts, patch))
        images.append(vol[(slice(None),) + sl])
        if lab is not None:
            masks.append(lab[sl])
    return torch.stack(images), (torch.stack(masks) if labels is not None else None)


def strong_view(u: torch.Tensor, cfg: ImagePerturbConfig, gen: torch.Generator) -> torch.Tensor:
    """Bias field + gamma (p bias_gamma_p), then blur (p blur_p), each sample on its own."""
    import torchio as tio  # imported here: 2D runs never need it

    out = []
    for vol in u:
        do_bias_gamma = cfg.bias_gamma and _rand(gen) < cfg.bias_gamma_p
        do_blur = cfg.blur and _rand(gen) < cfg.blur_p
        seed = _randint(gen, 0, 2**31 - 1)
        s = vol.detach().float().cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if do_bias_gamma:
                s = tio.RandomBiasField(cfg.bias_coefficient)(s)
                s = tio.RandomGamma(tuple(cfg.log_gamma))(s)
            if do_blur:
                s = tio.RandomBlur(tuple(cfg.blur_sigma))(s)
        out.append(s)
    return torch.stack(out).to(u.device, u.dtype)


def cutmix_boxes(b: int, patch: tuple[int, int, int], cfg: ImagePerturbConfig, gen: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(b, X, Y, Z) {0, 1} boxes. Each box has volume a * X*Y*Z with a ~ U(cutmix_area),
    sides w = (V/r)^(1/3), h = (V*r)^(1/3), d = V^(1/3) with r ~ U(cutmix_ratio).

    cutmix_box_axes="official" places them as the official LA code does: the corner along
    x is drawn for width w in [0, X - w), along y for h, along z for d, but the mask is
    then written as mask[z:z+d, y:y+h, x:x+w], so the depth d runs along x from a corner
    below Z - d, and the width w runs along z and is cut off at Z. The boxes are smaller
    than intended and sit towards low x. "clean" writes mask[x:x+w, y:y+h, z:z+d].
    """
    X, Y, Z = patch
    boxes = torch.zeros(b, X, Y, Z)
    for i in range(b):
        if not cfg.cutmix or _rand(gen) >= cfg.cutmix_p:
            continue
        lo, hi = cfg.cutmix_area
        size = (lo + (hi - lo) * _rand(gen)) * X * Y * Z
        for attempt in range(1000):
            r0, r1 = cfg.cutmix_ratio
            ratio = r0 + (r1 - r0) * _rand(gen)
            w, h, d = int(math.pow(size / ratio, 1 / 3)), int(math.pow(size * ratio, 1 / 3)), int(math.pow(size, 1 / 3))
            if w < X and h < Y and d < Z:
                break
            if d >= Z:
                # No ratio fits this volume in a flat patch; the official patch (112x112x80)
                # never gets here. Draw the volume again.
                size = (lo + (hi - lo) * _rand(gen)) * X * Y * Z
        else:
            raise ValueError(f"no CutMix box of area {cfg.cutmix_area} and ratio {cfg.cutmix_ratio} fits "
                             f"a {patch} patch; lower perturb.image.cutmix_area")
        x, y, z = _randint(gen, 0, X - w), _randint(gen, 0, Y - h), _randint(gen, 0, Z - d)
        if cfg.cutmix_box_axes == "official":
            boxes[i, z:z + d, y:y + h, x:x + w] = 1.0
        else:
            boxes[i, x:x + w, y:y + h, z:z + d] = 1.0
    return boxes.to(device)


def centre_crop(volume: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """The central `patch` of a (C, X, Y, Z) volume, zero-padded where it is smaller."""
    shape = volume.shape[1:]
    pads = [max(p - s, 0) for s, p in zip(shape, patch)]
    if any(pads):
        volume = F.pad(volume, [v for pad in reversed(pads) for v in (pad // 2, pad - pad // 2)])
        shape = volume.shape[1:]
    starts = [(s - p) // 2 for s, p in zip(shape, patch)]
    return volume[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(starts, patch))]


def box_layouts(n: int, patch: tuple[int, int, int], cfg: ImagePerturbConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """n CutMix boxes drawn twice from the same random numbers, once per layout of
    `perturb.image.cutmix_box_axes` ({"official": (n, X, Y, Z), "clean": ...}), each sample
    given a box (cutmix_p = 1): the two differ only in where the sides are written."""
    import dataclasses

    return {axes: cutmix_boxes(n, patch, dataclasses.replace(cfg, cutmix=True, cutmix_p=1.0, cutmix_box_axes=axes),
                               torch.Generator().manual_seed(seed))
            for axes in ("official", "clean")}
