"""The mixing family (crossmatch_lite/views/mixing.py): the CutMix boxes, 2D and 3D, are
the official sampler's.

  * cutmix_boxes_2d: boxes are rectangles whose area, aspect and frequency follow the
    official ACDC sampler (same bounds; two-sample KS test against a re-statement of that
    sampler, benchmarks/official_loop.py), and they are the draws the module's docstring
    lists, in that order;
  * cutmix_boxes_3d / box_layouts: every box is exactly the one the official
    obtain_cutmix_box draws from the same random numbers, re-stated here axis by axis
    (sides w = (V/r)^(1/3), h = (V*r)^(1/3), d = V^(1/3); corners x in [0, X - w),
    y in [0, Y - h), z in [0, Z - d); written mask[z:z+d, y:y+h, x:x+w] for "official",
    mask[x:x+w, y:y+h, z:z+d] for "clean"), with probability cutmix_p and a volume within
    cutmix_area of the patch, from the same draws and no other;
  * with cutmix off, neither form draws anything.
"""
from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks.official_loop import cutmix_box as official_cutmix_box
from crossmatch_lite.config import ImagePerturbConfig
from crossmatch_lite.views import draws, mixing
from view_stats import assert_binomial, la_image_cfg, replay


# ---------------------------------------------------------------- 2D CutMix boxes
def box_shape(mask: np.ndarray):
    """(w, h) of a {0, 1} mask that must be one filled axis-aligned rectangle, or None."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert len(ys) == h * w, "a CutMix box must be one filled rectangle"
    return int(w), int(h)


def test_cutmix_boxes_follow_the_official_sampler():
    cfg = ImagePerturbConfig()
    size, n = 64, 1500
    boxes = mixing.cutmix_boxes_2d(n, size, cfg, torch.Generator().manual_seed(11))
    ours = [box_shape(m) for m in boxes.numpy()]
    pyrng, nprng = random.Random(12), np.random.RandomState(12)
    theirs = [box_shape(official_cutmix_box(size, pyrng, nprng).numpy()) for _ in range(n)]

    ours_f = [s for s in ours if s is not None]
    theirs_f = [s for s in theirs if s is not None]
    assert abs(len(ours_f) / n - cfg.cutmix_p) < 0.05 and abs(len(theirs_f) / n - cfg.cutmix_p) < 0.05
    lo, hi = cfg.cutmix_area
    r_lo, r_hi = cfg.cutmix_ratio
    for w, h in ours_f:  # the bounds, allowing for int() truncation of each side
        a = w * h / size ** 2
        assert a <= hi + 1e-9 and (w + 1) * (h + 1) / size ** 2 >= lo
        assert (h / (w + 1)) <= r_hi and ((h + 1) / w) >= r_lo
        assert w <= size and h <= size
    # Same distribution of area and aspect (incl. the rejection sampler's bias to small boxes).
    area = lambda s: [w * h / size ** 2 for w, h in s]  # noqa: E731
    aspect = lambda s: [math.log((h + 0.5) / (w + 0.5)) for w, h in s]  # noqa: E731
    assert stats.ks_2samp(area(ours_f), area(theirs_f)).pvalue > 0.01
    assert stats.ks_2samp(aspect(ours_f), aspect(theirs_f)).pvalue > 0.01



def test_cutmix_boxes_2d_draw_in_the_documented_order():
    """One sample after another: the box draw, then for a box the area, then ratio and
    corner until the box fits, and nothing else; re-drawn here from a generator in the
    same state (a low ratio range makes the re-draws happen)."""
    size, n = 20, 300
    cfg = ImagePerturbConfig(cutmix_ratio=[0.3, 3.0], cutmix_area=[0.1, 0.6])
    gen = torch.Generator().manual_seed(2)
    g = torch.Generator().manual_seed(2)
    boxes = mixing.cutmix_boxes_2d(n, size, cfg, gen)
    redraws = 0
    for i in range(n):
        expected = torch.zeros(size, size)
        if float(torch.rand(1, generator=g)) < cfg.cutmix_p:
            area = float(draws.uniform(g, 1, *cfg.cutmix_area)) * size * size
            while True:
                ratio = float(draws.uniform(g, 1, *cfg.cutmix_ratio))
                w, h = int(math.sqrt(area / ratio)), int(math.sqrt(area * ratio))
                x, y = torch.randint(0, size, (2,), generator=g).tolist()
                if x + w <= size and y + h <= size:
                    break
                redraws += 1
            expected[y:y + h, x:x + w] = 1.0
        assert torch.equal(boxes[i], expected), i
    assert torch.equal(gen.get_state(), g.get_state()) and redraws > n


@pytest.mark.parametrize("dims", [2, 3])
def test_cutmix_off_draws_nothing(dims):
    """With cutmix off the boxes are empty and no number is drawn, so the views after them
    are those of a run that never had CutMix."""
    cfg = dataclasses.replace(la_image_cfg() if dims == 3 else ImagePerturbConfig(), cutmix=False)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    boxes = (mixing.cutmix_boxes_3d(8, (12, 12, 8), cfg, gen) if dims == 3
             else mixing.cutmix_boxes_2d(8, 16, cfg, gen))
    assert boxes.sum() == 0 and torch.equal(gen.get_state(), state)


# ---------------------------------------------------------------- 3D CutMix boxes
def official_boxes(n: int, patch, cfg: ImagePerturbConfig, gen: torch.Generator, axes: str) -> np.ndarray:
    """The official LA obtain_cutmix_box, re-stated with the random numbers taken from `gen`
    in the order cutmix_boxes_3d draws them (p, volume, ratio, then the x, y, z corners)."""
    X, Y, Z = patch
    out = np.zeros((n, X, Y, Z), dtype=np.float32)
    rand = lambda: float(torch.rand(1, generator=gen))  # noqa: E731
    randint = lambda hi: int(torch.randint(0, hi, (1,), generator=gen))  # noqa: E731  # [0, hi)
    for i in range(n):
        if rand() >= cfg.cutmix_p:
            continue
        volume = (cfg.cutmix_area[0] + (cfg.cutmix_area[1] - cfg.cutmix_area[0]) * rand()) * X * Y * Z
        ratio = cfg.cutmix_ratio[0] + (cfg.cutmix_ratio[1] - cfg.cutmix_ratio[0]) * rand()
        w = int(np.power(volume / ratio, 1 / 3))
        h = int(np.power(volume * ratio, 1 / 3))
        d = int(np.power(volume, 1 / 3))
        # At these patch sizes, as at the official 112x112x80, every box fits at the first draw.
        assert w < X and h < Y and d < Z
        x, y, z = randint(X - w), randint(Y - h), randint(Z - d)
        if axes == "official":
            out[i, z:z + d, y:y + h, x:x + w] = 1  # the LA code's line, cut off where it overruns
        else:
            out[i, x:x + w, y:y + h, z:z + d] = 1
    return out


def extents(mask: np.ndarray) -> tuple[int, int, int] | None:
    """The sides of a {0, 1} mask that must be one filled box, or None when empty."""
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    sides = tuple(int(s) for s in idx.max(0) - idx.min(0) + 1)
    assert len(idx) == math.prod(sides), "a CutMix box must be one filled box"
    return sides


@pytest.mark.parametrize("axes", ["official", "clean"])
@pytest.mark.parametrize("patch, cutmix_p", [
    ((28, 28, 20), 0.5),  # the official 112x112x80 shrunk, with the LA probability
    ((32, 30, 20), 0.7),  # x != y, and another probability
])
def test_cutmix_boxes_are_the_official_boxes_axis_by_axis(axes, patch, cutmix_p):
    cfg = la_image_cfg(cutmix_box_axes=axes, cutmix_p=cutmix_p)
    n = 300
    ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    boxes = mixing.cutmix_boxes_3d(n, patch, cfg, ours)
    expected = official_boxes(n, patch, cfg, theirs, axes)
    assert torch.equal(ours.get_state(), theirs.get_state())  # the same draws, nothing else
    assert boxes.shape == (n, *patch)
    for i in range(n):
        assert np.array_equal(boxes[i].numpy(), expected[i]), f"sample {i}: not the official box"
    sides = [extents(b) for b in boxes.numpy()]
    assert_binomial(sum(s is not None for s in sides), n, cfg.cutmix_p)
    if axes == "clean":  # nothing cut off: the box volume is the drawn share of the patch, truncated
        lo, hi = cfg.cutmix_area
        full = math.prod(patch)
        for w, h, d in (s for s in sides if s is not None):
            assert w * h * d <= hi * full and (w + 1) * (h + 1) * (d + 1) > lo * full


def test_box_layouts_are_the_same_draws_written_both_ways():
    patch = (28, 28, 20)
    cfg = la_image_cfg(cutmix_p=0.5)  # box_layouts boxes every sample whatever cutmix_p says
    layouts = mixing.box_layouts(40, patch, cfg, seed=3)
    for axes in ("official", "clean"):
        always = dataclasses.replace(cfg, cutmix_p=1.0)
        expected = official_boxes(40, patch, always, torch.Generator().manual_seed(3), axes)
        assert np.array_equal(layouts[axes].numpy(), expected), axes
    assert all(b.sum() > 0 for b in layouts["clean"])
    # With CutMix off in the config, and the default seed 0, every sample still gets a box.
    off = mixing.box_layouts(8, patch, dataclasses.replace(cfg, cutmix=False))
    expected = official_boxes(8, patch, dataclasses.replace(cfg, cutmix_p=1.0), torch.Generator().manual_seed(0),
                              "clean")
    assert np.array_equal(off["clean"].numpy(), expected)


def test_a_3d_box_never_spans_a_whole_side_of_the_patch():
    """The official sampler draws the ratio again until each side is strictly below the
    patch's: in a 4-voxel patch with 90 % of its volume drawn, a side of 4 comes up often
    and is never kept (its corner range [0, 0) would be empty)."""
    patch = (4, 4, 4)
    cfg = la_image_cfg(cutmix_p=1.0, cutmix_area=(0.9, 0.9), cutmix_box_axes="clean")
    boxes = mixing.cutmix_boxes_3d(60, patch, cfg, torch.Generator().manual_seed(0))
    for box in boxes.numpy():
        extents = [int(box.any(axis=tuple(a for a in range(3) if a != axis)).sum()) for axis in range(3)]
        assert all(0 < e < 4 for e in extents), extents


def test_a_volume_too_deep_for_a_flat_patch_is_drawn_again():
    """In a patch too flat for some volumes (d = V^(1/3) >= Z whatever the ratio), the
    volume is drawn again after such a ratio, then the ratio, until the box fits: the
    boxes are those of these draws in this order, and nothing else is drawn."""
    patch, n = (24, 24, 6), 40
    X, Y, Z = patch
    cfg = la_image_cfg(cutmix_p=1.0, cutmix_box_axes="clean")
    (lo, hi), (r0, r1) = cfg.cutmix_area, cfg.cutmix_ratio
    gen = torch.Generator().manual_seed(0)
    g = replay(gen)
    boxes = mixing.cutmix_boxes_3d(n, patch, cfg, gen)
    redrawn = 0
    for i in range(n):
        assert draws.rand(g) < cfg.cutmix_p
        size = (lo + (hi - lo) * draws.rand(g)) * X * Y * Z
        while True:
            ratio = r0 + (r1 - r0) * draws.rand(g)
            w, h, d = int((size / ratio) ** (1 / 3)), int((size * ratio) ** (1 / 3)), int(size ** (1 / 3))
            if w < X and h < Y and d < Z:
                break
            if d >= Z:
                size, redrawn = (lo + (hi - lo) * draws.rand(g)) * X * Y * Z, redrawn + 1
        x, y, z = draws.randint(g, 0, X - w), draws.randint(g, 0, Y - h), draws.randint(g, 0, Z - d)
        expected = torch.zeros(patch)
        expected[x:x + w, y:y + h, z:z + d] = 1
        assert torch.equal(boxes[i], expected), i
    assert redrawn > 0 and torch.equal(gen.get_state(), g.get_state())


def test_a_patch_that_no_box_fits_is_refused_with_the_key_to_lower():
    with pytest.raises(ValueError, match=r"no CutMix box .* fits a \(24, 24, 2\) patch; lower perturb.image.cutmix_area"):
        mixing.cutmix_boxes_3d(1, (24, 24, 2), la_image_cfg(cutmix_p=1.0), torch.Generator().manual_seed(0))
