"""The mixing family: CutMix boxes, 2D rectangles and 3D boxes. Pasting a box of one
batch into another is `crossmatch_lite/cutmix.py`; here the boxes are drawn.

Distributions (those of the official obtain_cutmix_box, AiEson/CrossMatch):

    2D  cutmix_boxes_2d (ACDC), (B, H, W) with H = W: with probability cutmix_p a box of
        area a * H * W, a ~ U(cutmix_area) = U(0.02, 0.4), aspect ratio r ~ U(cutmix_ratio)
        = U(0.3, 1 / 0.3), sides w = sqrt(area / r), h = sqrt(area * r) (truncated), its
        corner uniform over the image; ratio and corner are drawn again until the box
        fits, as the official sampler does; else no box.
    3D  cutmix_boxes_3d (LA), (B, X, Y, Z): with probability cutmix_p a box of volume
        V = a * X * Y * Z, a ~ U(cutmix_area), sides w = (V / r)^(1/3), h = (V * r)^(1/3),
        d = V^(1/3), r ~ U(cutmix_ratio); corners x in [0, X - w), y in [0, Y - h),
        z in [0, Z - d). cutmix_box_axes="official" writes it as the official LA code
        does (mask[z:z+d, y:y+h, x:x+w]), "clean" as mask[x:x+w, y:y+h, z:z+d].

Random draws, all from the generator handed in, in this order; with cutmix off no
number is drawn at all:

    cutmix_boxes_2d  one sample after another: torch.rand(1) (a box where < cutmix_p);
                     for a box, uniform(1) (area), then, until the box fits, uniform(1)
                     (ratio) and torch.randint(0, H, (2,)) (corner x, y).
    cutmix_boxes_3d  one sample after another: rand() (a box where < cutmix_p); for a
                     box, rand() (volume), then, until the box fits, rand() (ratio), with
                     one more rand() (the volume again) after a ratio for which no box
                     fits along z; then randint for the corner along x, y and z.
    box_layouts      the draws of cutmix_boxes_3d, from its own generator seeded `seed`.

Exact resume depends on this order: a checkpoint stores the generator's state, and the
resumed run equals the uninterrupted one only if it draws the same numbers in the same
order as the code that wrote it; a seed's recorded results depend on it in the same way.
The resume tests run the same code on both sides and would not notice a new order:
tests/test_views_mixing.py re-makes these draws one by one and is what fails.
The official ACDC replay (tests/test_official_replay.py) puts the official script's
recorded boxes in place of `cutmix_boxes_2d`, by that name, and hands out one per call
in the order make_unlabeled_views calls it (box 1, then box 2): keep the name and the
calls; the draws inside are replaced, so the replay does not check them. The official
LA replay hands the step its recorded boxes directly; tests/test_views_mixing.py
re-draws the official LA boxes from these draws in this order.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..config import ImagePerturbConfig
from .draws import rand, randint, uniform


def cutmix_boxes_2d(b: int, size: int, cfg: ImagePerturbConfig, gen: torch.Generator,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(b, size, size) {0, 1} masks: with probability cutmix_p a box of area a*size^2,
    a ~ U(area), aspect ratio ~ U(ratio), placed uniformly so that it fits (re-drawing
    ratio and corner until it does, as the official sampler does); else empty.
    """
    boxes = torch.zeros(b, size, size)
    for i in range(b):
        if not cfg.cutmix or torch.rand(1, generator=gen).item() >= cfg.cutmix_p:
            continue
        area = uniform(gen, 1, *cfg.cutmix_area).item() * size * size
        while True:
            ratio = uniform(gen, 1, *cfg.cutmix_ratio).item()
            bw, bh = int(math.sqrt(area / ratio)), int(math.sqrt(area * ratio))
            x0, y0 = torch.randint(0, size, (2,), generator=gen).tolist()
            if x0 + bw <= size and y0 + bh <= size:
                break
        boxes[i, y0:y0 + bh, x0:x0 + bw] = 1.0
    return boxes.to(device)


def cutmix_boxes_3d(b: int, patch: tuple[int, int, int], cfg: ImagePerturbConfig, gen: torch.Generator,
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
        if not cfg.cutmix or rand(gen) >= cfg.cutmix_p:
            continue
        lo, hi = cfg.cutmix_area
        size = (lo + (hi - lo) * rand(gen)) * X * Y * Z
        for attempt in range(1000):
            r0, r1 = cfg.cutmix_ratio
            ratio = r0 + (r1 - r0) * rand(gen)
            w, h, d = int(math.pow(size / ratio, 1 / 3)), int(math.pow(size * ratio, 1 / 3)), int(math.pow(size, 1 / 3))
            if w < X and h < Y and d < Z:
                break
            if d >= Z:
                # No ratio fits this volume in a flat patch; the official patch (112x112x80)
                # never gets here. Draw the volume again.
                size = (lo + (hi - lo) * rand(gen)) * X * Y * Z
        else:
            raise ValueError(f"no CutMix box of area {cfg.cutmix_area} and ratio {cfg.cutmix_ratio} fits "
                             f"a {patch} patch; lower perturb.image.cutmix_area")
        x, y, z = randint(gen, 0, X - w), randint(gen, 0, Y - h), randint(gen, 0, Z - d)
        if cfg.cutmix_box_axes == "official":
            boxes[i, z:z + d, y:y + h, x:x + w] = 1.0
        else:
            boxes[i, x:x + w, y:y + h, z:z + d] = 1.0
    return boxes.to(device)


def box_layouts(n: int, patch: tuple[int, int, int], cfg: ImagePerturbConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """n CutMix boxes drawn twice from the same random numbers, once per layout of
    `perturb.image.cutmix_box_axes` ({"official": (n, X, Y, Z), "clean": ...}), each sample
    given a box (cutmix_p = 1): the two differ only in where the sides are written."""
    return {axes: cutmix_boxes_3d(n, patch, dataclasses.replace(cfg, cutmix=True, cutmix_p=1.0, cutmix_box_axes=axes),
                                  torch.Generator().manual_seed(seed))
            for axes in ("official", "clean")}
