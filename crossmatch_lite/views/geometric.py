"""The geometric family: weak views, 2D and 3D, and the crop and 8-bit rounding around them.

Distributions (those of the official loaders, AiEson/CrossMatch):

    2D  weak_view_2d (ACDC random_rot_flip / random_rotate), images (B, C, H, W): with
        p 0.5 a quarter turn k ~ {0..3} then a flip of one axis ~ {0, 1}; else with p 0.5
        (0.25 overall) a rotation by an integer angle ~ [-20, 20) degrees, nearest
        neighbour and zero fill (scipy.ndimage.rotate, order=0, reshape=False); else
        unchanged. The official loader sees each sample on its own on the CPU; here every
        sample still has its own parameters, but the batch is resampled at once on the
        training device. quantize_8bit is the 8-bit PIL image the official unlabeled
        pipeline goes through (floor(x * 255) / 255).
    3D  weak_view_3d (LA RandomRotFlip then RandomCrop), volumes (C, X, Y, Z) of
        different sizes, z the slice axis: a quarter turn k ~ {0..3} in the (x, y) plane,
        a flip of x or y, then a crop of `patch` voxels at a start uniform over
        [0, s - p) on each axis; a volume no larger than the patch along some axis is
        first zero-padded by (p - s) // 2 + 3 on both sides of every axis, as the official
        crop does. centre_crop is the patch the BatchNorm statistics are recomputed on.

Random draws, all from the generator handed in, in this order:

    weak_view_2d  for the whole batch at once, every number drawn whatever branch a
                  sample takes: torch.rand(B) (rot + flip where < 0.5), torch.rand(B)
                  (rotation where < 0.5), torch.randint(0, 4, (B,)) (k),
                  torch.randint(0, 2, (B,)) (flip axis), torch.randint(-20, 20, (B,))
                  (angle).
    weak_view_3d  one volume after another: randint(0, 4) (k), randint(0, 2) (flip
                  axis), then the crop start along x, y and z, randint(0, s - p) each,
                  on the padded volume.
    quantize_8bit, centre_crop: none.

Exact resume depends on this order: a checkpoint stores the generator's state, and the
resumed run equals the uninterrupted one only if it draws the same numbers in the same
order as the code that wrote it; a seed's recorded results depend on it in the same way.
The resume tests run the same code on both sides and would not notice a new order:
tests/test_views_geometric.py re-makes these draws one by one and is what fails.
The official ACDC and LA replays start from the official script's recorded weak views,
so they do not run these draws.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .draws import bernoulli, randint


# ---------------------------------------------------------------- 2D
def weak_view_2d(images: torch.Tensor, labels: torch.Tensor | None, gen: torch.Generator):
    """Images (B, C, H, W) square, labels (B, H, W) or None -> the same shapes (labels long).

    Random rot90 + flip (p 0.5), else a rotation by an integer angle in [-20, 20) degrees
    (p 0.25), else unchanged; nearest-neighbour, zero fill, as scipy.ndimage with order=0.
    Every case is one affine map of the square image, so the whole batch is resampled
    by a single grid_sample call; image and label move together.
    """
    b = images.shape[0]
    rot_flip = bernoulli(gen, b, 0.5)
    rotate = ~rot_flip & bernoulli(gen, b, 0.5)
    k = torch.randint(0, 4, (b,), generator=gen)
    flip_axis = torch.randint(0, 2, (b,), generator=gen)
    angle_deg = torch.randint(-20, 20, (b,), generator=gen).float()

    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # rot90 by k quarter turns, then flip one axis: exact pixel permutations.
    ang = k.float() * (math.pi / 2)
    c, s = torch.cos(ang).round(), torch.sin(ang).round()
    rf = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)
    flip = torch.ones(b, 2)
    flip[torch.arange(b), flip_axis] = -1.0
    rf = rf * flip[:, None, :]
    theta[rot_flip, :, :2] = rf[rot_flip]
    rad = angle_deg * (math.pi / 180)
    rot = torch.stack([torch.stack([torch.cos(rad), -torch.sin(rad)], 1),
                       torch.stack([torch.sin(rad), torch.cos(rad)], 1)], 1)
    theta[rotate, :, :2] = rot[rotate]

    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    stacked = images if labels is None else torch.cat([images, labels[:, None].to(images.dtype)], 1)
    out = F.grid_sample(stacked, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if labels is None:
        return out, None
    return out[:, :-1], out[:, -1].round().long()


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """The official unlabeled pipeline goes through an 8-bit PIL image: floor(x*255)/255
    (any shape)."""
    return torch.floor(x.clamp(0, 1) * 255.0) / 255.0


# ---------------------------------------------------------------- 3D
def weak_view_3d(volumes: list[torch.Tensor], labels: list[torch.Tensor] | None, patch: tuple[int, int, int],
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Volumes (C, X, Y, Z) and labels (X, Y, Z) -> (B, C, *patch) crops of the rotated and
    flipped volumes, with their (B, *patch) labels (None without labels)."""
    images, masks = [], []
    for i, vol in enumerate(volumes):
        lab = labels[i] if labels is not None else None
        k, axis = randint(gen, 0, 4), randint(gen, 0, 2)
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
        starts = [randint(gen, 0, s - p) if s > p else 0 for s, p in zip(shape, patch)]
        sl = tuple(slice(a, a + p) for a, p in zip(starts, patch))
        images.append(vol[(slice(None),) + sl])
        if lab is not None:
            masks.append(lab[sl])
    return torch.stack(images), (torch.stack(masks) if labels is not None else None)


def centre_crop(volume: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """The central `patch` (C, *patch) of a (C, X, Y, Z) volume, zero-padded where it is smaller."""
    shape = volume.shape[1:]
    pads = [max(p - s, 0) for s, p in zip(shape, patch)]
    if any(pads):
        volume = F.pad(volume, [v for pad in reversed(pads) for v in (pad // 2, pad - pad // 2)])
        shape = volume.shape[1:]
    starts = [(s - p) // 2 for s, p in zip(shape, patch)]
    return volume[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(starts, patch))]
