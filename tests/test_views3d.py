"""The 3D (LA) views follow the distributions of the official LA data loader.

The official LA replay (tests/test_official_replay_la.py) hands the step recorded views and
boxes, and tests/test_3d_end_to_end.py checks that the views follow the seed; neither looks at
what is drawn. Here, over a few hundred seeded draws, as tests/test_views2d.py
does for the 2D views:

  * weak_view: every output is one of the four reflections in the (x, y) plane (a quarter
    turn k then a flip of x or y; z untouched), each about a quarter of the time, cropped to
    the patch at a start uniform over [0, s - p) on each axis; volumes no larger than the
    patch along some axis are first zero-padded by (p - s) // 2 + 3 on both sides of every
    axis; the label moves with the image. The reflection and the crop are read back from
    the output, not from the generator;
  * centre_crop: the central patch, zero-padded (the odd voxel after) where smaller;
  * strong_view: with torchio's transforms replaced by recorders, bias field then gamma
    run with probability bias_gamma_p, blur with probability blur_p, independently and
    with the configured parameters, and torch's global generator is left as it was;
  * cutmix_boxes / box_layouts: every box is exactly the one the official
    obtain_cutmix_box draws from the same random numbers, re-stated here axis by axis
    (sides w = (V/r)^(1/3), h = (V*r)^(1/3), d = V^(1/3); corners x in [0, X - w),
    y in [0, Y - h), z in [0, Z - d); written mask[z:z+d, y:y+h, x:x+w] for "official",
    mask[x:x+w, y:y+h, z:z+d] for "clean"), with probability cutmix_p and a volume within
    cutmix_area of the patch.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from crossmatch_lite.views import views3d
from crossmatch_lite.config import ImagePerturbConfig, load_config


def la_image_cfg(**changes) -> ImagePerturbConfig:
    return dataclasses.replace(load_config("configs/la.yaml").perturb.image, **changes)


def assert_binomial(count: int, n: int, p: float, z: float = 4.0) -> None:
    """count successes in n draws agree with probability p (z standard deviations)."""
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(count / n - p) <= z * sd, f"{count}/{n} = {count / n:.3f}, expected {p} +- {z * sd:.3f}"


def distinct_volume(shape, seed: int = 0) -> torch.Tensor:
    """(1, *shape) with distinct non-zero integer values, so a voxel's value names its position."""
    n = math.prod(shape)
    return (torch.randperm(n, generator=torch.Generator().manual_seed(seed)) + 1).float().view(1, *shape)


def xy_reflections(v: np.ndarray) -> list[np.ndarray]:
    """What a quarter turn in the (x, y) plane followed by a flip of x or y can give."""
    return [v[::-1], v[:, ::-1], v.transpose(1, 0, 2), v[::-1, ::-1].transpose(1, 0, 2)]


def official_pad(shape, patch) -> list[int]:
    """The official RandomCrop pad: (p - s) // 2 + 3 (floored, at least 0) on each side of
    every axis, applied when any axis is no larger than the patch."""
    if all(s > p for s, p in zip(shape, patch)):
        return [0, 0, 0]
    return [max((p - s) // 2 + 3, 0) for s, p in zip(shape, patch)]


def locate(out: np.ndarray, vol: np.ndarray, patch) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(reflection index, crop start, padded shape) that `out` was cut from, read from its
    values alone."""
    anchor = tuple(np.argwhere(out != 0)[0])  # a voxel of the volume, not of the padding
    hits = []
    for r, refl in enumerate(xy_reflections(vol)):
        padded = np.pad(refl, [(q, q) for q in official_pad(refl.shape, patch)])
        where = np.argwhere(padded == out[anchor])
        if len(where) != 1:
            continue
        start = tuple(int(w - a) for w, a in zip(where[0], anchor))
        if min(start) < 0 or any(a + p > s for a, p, s in zip(start, patch, padded.shape)):
            continue
        if np.array_equal(padded[tuple(slice(a, a + p) for a, p in zip(start, patch))], out):
            hits.append((r, start, padded.shape))
    assert len(hits) == 1, f"not one reflection in the (x, y) plane, cropped: {len(hits)} matches"
    return hits[0]


def weak_draws(shape, patch, n: int, seed: int):
    """n weak views of one distinct-valued volume; per sample the reflection, crop start
    and padded shape read back from the output, after checking the label moved with it."""
    vol = distinct_volume(shape)
    lab = (vol[0].long() % 5).to(torch.uint8)
    x, y = views3d.weak_view([vol] * n, [lab] * n, patch, torch.Generator().manual_seed(seed))
    assert x.shape == (n, 1, *patch) and y.shape == (n, *patch)
    # The label is the image's own class map: it has moved with the image, padding included.
    assert torch.equal(y.long(), x[:, 0].long() % 5)
    return [locate(x[i, 0].numpy(), vol[0].numpy(), patch) for i in range(n)]


# ---------------------------------------------------------------- weak view
def test_weak_view_reflects_in_the_xy_plane_and_crops_uniformly():
    shape, patch, n = (14, 14, 9), (8, 8, 6), 400
    draws = weak_draws(shape, patch, n, seed=0)
    # No axis is as small as the patch: nothing is padded.
    assert all(padded == shape for _, _, padded in draws)
    reflections = np.bincount([r for r, _, _ in draws], minlength=4)
    for count in reflections:  # k uniform over 0..3 and a flip of x or y: each reflection 1/4
        assert_binomial(int(count), n, 1 / 4)
    for axis in range(3):
        starts = np.array([start[axis] for _, start, _ in draws])
        valid = shape[axis] - patch[axis]  # np.random.randint(0, s - p): s - p itself never
        assert set(starts.tolist()) == set(range(valid)), axis
        for value in range(valid):
            assert_binomial(int((starts == value).sum()), n, 1 / valid)


@pytest.mark.parametrize("shape, padded", [
    # z smaller than the patch, y one voxel larger, x four: the pad is (8-5)//2+3 = 4 on z,
    # (8-9)//2+3 = 2 on y and (8-12)//2+3 = 1 on x (axes larger than the patch get one too).
    ((12, 9, 5), (14, 13, 13)),
    # z exactly the patch ("no larger" includes equal): 3 on z; (8-16)//2+3 = -1, so none, on x and y.
    ((16, 16, 8), (16, 16, 14)),
])
def test_weak_view_pads_volumes_no_larger_than_the_patch_by_the_official_rule(shape, padded):
    patch, n = (8, 8, 8), 300
    draws = weak_draws(shape, patch, n, seed=1)
    turned = (padded[1], padded[0], padded[2])  # an odd quarter turn swaps x and y before the pad
    assert {size for r, _, size in draws if r < 2} == {padded}
    assert {size for r, _, size in draws if r >= 2} == {turned}
    for r in range(4):
        assert_binomial(sum(d[0] == r for d in draws), n, 1 / 4)
    for size in (padded, turned):
        for axis in range(3):
            starts = {start[axis] for _, start, s in draws if s == size}
            assert starts == set(range(size[axis] - patch[axis])), (size, axis)


# ---------------------------------------------------------------- centre crop
def test_centre_crop_takes_the_middle_and_pads_the_odd_voxel_after():
    vol = distinct_volume((11, 5, 8))
    out = views3d.centre_crop(vol, (8, 8, 8))
    v = vol[0].numpy()
    # x: start (11 - 8) // 2 = 1; y: 3 zeros, 1 before and 2 after; z: unchanged.
    expected = np.pad(v[1:9], [(0, 0), (1, 2), (0, 0)])
    assert out.shape == (1, 8, 8, 8) and np.array_equal(out[0].numpy(), expected)


# ---------------------------------------------------------------- strong view
class Recorder:
    """Stands in for a torchio transform: notes its arguments and which sample it saw."""

    log: list

    def __init__(self, *args):
        self.args = args

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        # The sample's index is its value; torch.initial_seed() is the seed set for it.
        self.log.append((type(self).__name__, int(s.flatten()[0]), self.args, torch.initial_seed()))
        return s


@pytest.mark.parametrize("changes", [
    {},  # the LA values: bias + gamma 0.8, blur 0.5
    {"bias_gamma_p": 0.3, "blur_p": 0.9},
    {"bias_gamma": False},
    {"blur": False},
])
def test_strong_view_applies_each_torchio_transform_with_its_probability(monkeypatch, changes):
    import torchio

    log: list = []
    for name in ("RandomBiasField", "RandomGamma", "RandomBlur"):
        monkeypatch.setattr(torchio, name, type(name, (Recorder,), {"log": log}))
    cfg = la_image_cfg(**changes)
    n = 600
    u = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 1, 2, 2, 2)
    rng = torch.get_rng_state()
    out = views3d.strong_view(u, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(out, u)  # the recorders change nothing
    assert torch.equal(torch.get_rng_state(), rng)  # torchio's draws never touch the global stream

    per_sample = {i: [name for name, j, _, _ in log if j == i] for i in range(n)}
    seeds = {i: {seed for _, j, _, seed in log if j == i} for i in range(n)}
    orders = {tuple(v) for v in per_sample.values()}
    # Bias field and gamma always together and in that order, blur last.
    assert orders <= {(), ("RandomBiasField", "RandomGamma"), ("RandomBlur",),
                      ("RandomBiasField", "RandomGamma", "RandomBlur")}
    bias = np.array(["RandomBiasField" in v for v in per_sample.values()])
    blur = np.array(["RandomBlur" in v for v in per_sample.values()])
    p_bias = cfg.bias_gamma_p if cfg.bias_gamma else 0.0
    p_blur = cfg.blur_p if cfg.blur else 0.0
    assert_binomial(int(bias.sum()), n, p_bias)
    assert_binomial(int(blur.sum()), n, p_blur)
    assert_binomial(int((bias & blur).sum()), n, p_bias * p_blur)  # drawn independently
    # One seed per sample for all its transforms, a different one for each sample.
    assert all(len(s) <= 1 for s in seeds.values())
    used = [next(iter(s)) for s in seeds.values() if s]
    assert len(set(used)) == len(used)
    args = {name: a for name, _, a, _ in log}
    expected = {"RandomBiasField": (cfg.bias_coefficient,), "RandomGamma": (tuple(cfg.log_gamma),),
                "RandomBlur": (tuple(cfg.blur_sigma),)}
    assert args == {k: v for k, v in expected.items() if k in args}


# ---------------------------------------------------------------- CutMix boxes
def official_boxes(n: int, patch, cfg: ImagePerturbConfig, gen: torch.Generator, axes: str) -> np.ndarray:
    """The official LA obtain_cutmix_box, re-stated with the random numbers taken from `gen`
    in the order views3d draws them (p, volume, ratio, then the x, y, z corners)."""
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
    boxes = views3d.cutmix_boxes(n, patch, cfg, torch.Generator().manual_seed(5))
    expected = official_boxes(n, patch, cfg, torch.Generator().manual_seed(5), axes)
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
    layouts = views3d.box_layouts(40, patch, cfg, seed=3)
    for axes in ("official", "clean"):
        always = dataclasses.replace(cfg, cutmix_p=1.0)
        expected = official_boxes(40, patch, always, torch.Generator().manual_seed(3), axes)
        assert np.array_equal(layouts[axes].numpy(), expected), axes
    assert all(b.sum() > 0 for b in layouts["clean"])
