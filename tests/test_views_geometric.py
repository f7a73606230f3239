"""The geometric family (crossmatch_lite/views/geometric.py): the weak views, 2D and 3D,
follow the official loaders' distributions, and the 8-bit rounding and centre crop around
them do what the official pipeline does.

2D, the batch-wise torch view that the speed work moved from per-sample scipy:

  * weak_view_2d: rot90 + flip is an exact pixel permutation (one of the four reflections
    the official `np.rot90` + `np.flip` produce), the rotation angle is an integer in
    [-20, 20) and resamples like scipy.ndimage.rotate(order=0), the three branches have the
    official probabilities, and the label moves with the image;
  * quantize_8bit: the official `(img * 255).astype(np.uint8)` PIL conversion, which the
    trainer's unlabeled weak view goes through.

3D (LA). The official LA replay (tests/test_official_replay_la.py) hands the step recorded
views and boxes, and tests/test_3d_end_to_end.py checks that the views follow the seed;
neither looks at what is drawn. Here, over a few hundred seeded draws:

  * weak_view_3d: every output is one of the four reflections in the (x, y) plane (a
    quarter turn k then a flip of x or y; z untouched), each about a quarter of the time,
    cropped to the patch at a start uniform over [0, s - p) on each axis; volumes no larger
    than the patch along some axis are first zero-padded by (p - s) // 2 + 3 on both sides
    of every axis; the label moves with the image. The reflection and the crop are read
    back from the output, not from the generator;
  * centre_crop: the central patch, zero-padded (the odd voxel after) where smaller.

The draw order the module's docstring lists is re-made here, draw by draw, for both forms
(the *_draws_in_the_documented_order tests): exact resume depends on it.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from crossmatch_lite import views as V
from crossmatch_lite.views import geometric
from crossmatch_lite.views.draws import randint
from view_stats import assert_binomial, replay


# ---------------------------------------------------------------- 2D weak view
def reflections(a: np.ndarray) -> list[np.ndarray]:
    """What np.rot90(a, k) followed by np.flip(axis) can give: the four reflections."""
    return [np.flip(a, 0), np.flip(a, 1), a.T, np.rot90(a, 2).T]


def weak_draws_2d(gen: torch.Generator, b: int):
    """The parameters weak_view_2d draws, in its order (rot_flip, rotate, k, flip axis, angle)."""
    g = replay(gen)
    rot_flip = torch.rand(b, generator=g) < 0.5
    rotate = ~rot_flip & (torch.rand(b, generator=g) < 0.5)
    k = torch.randint(0, 4, (b,), generator=g)
    flip_axis = torch.randint(0, 2, (b,), generator=g)
    angle = torch.randint(-20, 20, (b,), generator=g)
    return rot_flip, rotate, k, flip_axis, angle


def test_weak_view_branches_are_exact_permutations_and_scipy_rotations():
    b, s = 400, 24
    gen = torch.Generator().manual_seed(0)
    # Distinct pixel values, so equality of images means equality of pixel positions.
    base = torch.randperm(s * s, generator=torch.Generator().manual_seed(1)).float().view(s, s) / (s * s)
    images = base.expand(b, 1, s, s).clone()
    labels = (base * 4).long().clamp(max=3).expand(b, s, s).clone()
    rot_flip, rotate, _, _, angle = weak_draws_2d(gen, b)
    out, out_lab = geometric.weak_view_2d(images, labels, gen)

    assert out.shape == images.shape and out_lab.shape == labels.shape
    assert angle.dtype == torch.int64 and int(angle.min()) >= -20 and int(angle.max()) < 20
    assert int(angle.min()) == -20 and int(angle.max()) == 19  # the whole official range is drawn
    refl = reflections(base.numpy())
    lab_refl = reflections(labels[0].numpy())
    seen = np.zeros(4, dtype=int)
    agreement = []
    for i in range(b):
        o = out[i, 0].numpy()
        if rot_flip[i]:
            hits = [j for j, r in enumerate(refl) if np.array_equal(o, r)]
            assert len(hits) == 1, f"sample {i}: rot90 + flip is not an exact pixel permutation"
            assert np.array_equal(out_lab[i].numpy(), lab_refl[hits[0]])
            seen[hits[0]] += 1
        elif rotate[i]:
            ref = ndimage.rotate(base.numpy(), int(angle[i]), order=0, reshape=False)
            agreement.append((np.abs(o - ref) < 1e-7).mean())
            # The label is resampled with the same map: it is the image's own class map.
            moved = (out[i, 0] * 4).long().clamp(max=3)
            inside = out[i, 0] > 0  # zero fill outside the rotated square
            assert torch.equal(out_lab[i][inside], moved[inside])
        else:
            assert torch.equal(out[i], images[i]) and torch.equal(out_lab[i], labels[i])
    # Nearest-neighbour resampling agrees with scipy except on rounding ties near pixel edges.
    assert np.mean(agreement) > 0.95 and min(agreement) > 0.9
    # Official probabilities: rot+flip 0.5, rotate 0.25, unchanged 0.25; the reflections uniform.
    n_rf, n_rot = int(rot_flip.sum()), int(rotate.sum())
    assert abs(n_rf / b - 0.5) < 0.08 and abs(n_rot / b - 0.25) < 0.07
    assert seen.min() > 0.15 * n_rf



def test_weak_view_2d_draws_in_the_documented_order():
    """The five draws of the module's docstring, in that order and nothing else: the
    reflection of a rot + flip sample is set by its k and flip axis (the third and fourth
    draws; each pair always gives the same reflection, two pairs per reflection)."""
    b, s = 400, 24
    gen = torch.Generator().manual_seed(2)
    base = torch.randperm(s * s, generator=torch.Generator().manual_seed(1)).float().view(s, s) / (s * s)
    rot_flip, _, k, flip_axis, _ = weak_draws_2d(gen, b)
    end = replay(gen)
    for _ in range(2):
        torch.rand(b, generator=end)
    for lo, hi in ((0, 4), (0, 2), (-20, 20)):
        torch.randint(lo, hi, (b,), generator=end)
    out, _ = geometric.weak_view_2d(base.expand(b, 1, s, s).clone(), None, gen)
    assert torch.equal(gen.get_state(), end.get_state())
    refl = reflections(base.numpy())
    hit = {}
    for i in torch.nonzero(rot_flip).flatten().tolist():
        j = [j for j, r in enumerate(refl) if np.array_equal(out[i, 0].numpy(), r)]
        hit.setdefault((int(k[i]), int(flip_axis[i])), set()).update(j)
    assert len(hit) == 8 and all(len(v) == 1 for v in hit.values())
    # The flip axis drawn is the one flipped: for each k, the two axes give two reflections.
    assert all(hit[(q, 0)] != hit[(q, 1)] for q in range(4))
    assert sorted(np.bincount([next(iter(v)) for v in hit.values()], minlength=4)) == [2, 2, 2, 2]


def test_weak_view_2d_moves_every_channel_and_the_label_alike_in_any_float_dtype_and_device():
    """RGB images (ISIC): the three channels and the label go through the same resampling;
    float64 images give float64 views of the same values, a batch on another device (meta
    here) stays there, and nothing warns (grid_sample's align_corners is given)."""
    b, s = 16, 6
    base = torch.randperm(s * s, generator=torch.Generator().manual_seed(1)).float().view(s, s) / (s * s)
    images = torch.stack([base, 2 * base, 3 * base])[None].expand(b, 3, s, s).clone()
    labels = (base * s * s).round().long().remainder(3).expand(b, s, s).clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, y = geometric.weak_view_2d(images, labels, torch.Generator().manual_seed(0))
    assert x.shape == (b, 3, s, s) and y.shape == (b, s, s) and y.dtype == torch.long
    assert torch.equal(x[:, 1], 2 * x[:, 0]) and torch.equal(x[:, 2], 3 * x[:, 0])
    assert torch.equal(y, (x[:, 0] * s * s).round().long().remainder(3))
    x64, _ = geometric.weak_view_2d(images.double(), None, torch.Generator().manual_seed(0))
    assert x64.dtype == torch.float64 and torch.equal(x64, x.double())
    meta, _ = geometric.weak_view_2d(images.to("meta"), None, torch.Generator().manual_seed(0))
    assert meta.device.type == "meta" and meta.shape == x.shape


# ---------------------------------------------------------------- 2D 8-bit conversion
def test_quantize_8bit_is_the_official_pil_conversion():
    x = torch.rand(4, 1, 33, 33, generator=torch.Generator().manual_seed(2))
    x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 254.5 / 255, 1 / 255])
    official = (x.numpy() * 255).astype(np.uint8).astype(np.float32) / 255.0
    assert torch.equal(geometric.quantize_8bit(x), torch.from_numpy(official))
    # Outside [0, 1] the uint8 cast would wrap (1.5 -> 126/255); the view clamps to the ends.
    assert torch.equal(geometric.quantize_8bit(torch.tensor([-0.25, -1e-6, 1.0 + 1e-6, 1.5, 2.5])),
                       torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))


def test_unlabeled_weak_views_go_through_8_bit_as_the_official_pipeline():
    """The trainer's unlabeled weak view (Views2D.weak_unlabeled) is the 8-bit PIL round
    trip of the official loader: every value on the 1/255 grid; the labeled view is not."""
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    views = V.views_for(2)
    u = views.weak_unlabeled(images, torch.Generator().manual_seed(1))
    assert torch.equal(u, torch.floor(u * 255.0) / 255.0)
    x, _ = views.weak(images, torch.zeros(4, 32, 32, dtype=torch.long), torch.Generator().manual_seed(1))
    assert not torch.equal(x, torch.floor(x * 255.0) / 255.0)


# ---------------------------------------------------------------- 3D weak view
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


def weak_draws_3d(shape, patch, n: int, seed: int):
    """n weak views of one distinct-valued volume; per sample the reflection, crop start
    and padded shape read back from the output, after checking the label moved with it."""
    vol = distinct_volume(shape)
    lab = (vol[0].long() % 5).to(torch.uint8)
    x, y = geometric.weak_view_3d([vol] * n, [lab] * n, patch, torch.Generator().manual_seed(seed))
    assert x.shape == (n, 1, *patch) and y.shape == (n, *patch)
    # The label is the image's own class map: it has moved with the image, padding included.
    assert torch.equal(y.long(), x[:, 0].long() % 5)
    return [locate(x[i, 0].numpy(), vol[0].numpy(), patch) for i in range(n)]


def test_weak_view_reflects_in_the_xy_plane_and_crops_uniformly():
    shape, patch, n = (14, 14, 9), (8, 8, 6), 400
    draws = weak_draws_3d(shape, patch, n, seed=0)
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
    # z two voxels: (8-2)//2+3 = 6 on z, 2 on y, 1 on x.
    ((12, 9, 2), (14, 13, 14)),
])
def test_weak_view_pads_volumes_no_larger_than_the_patch_by_the_official_rule(shape, padded):
    patch, n = (8, 8, 8), 300
    draws = weak_draws_3d(shape, patch, n, seed=1)
    turned = (padded[1], padded[0], padded[2])  # an odd quarter turn swaps x and y before the pad
    assert {size for r, _, size in draws if r < 2} == {padded}
    assert {size for r, _, size in draws if r >= 2} == {turned}
    for r in range(4):
        assert_binomial(sum(d[0] == r for d in draws), n, 1 / 4)
    for size in (padded, turned):
        for axis in range(3):
            starts = {start[axis] for _, start, s in draws if s == size}
            assert starts == set(range(size[axis] - patch[axis])), (size, axis)



def test_weak_view_3d_pads_unlabeled_volumes_too():
    vol = distinct_volume((5, 6, 3))
    x, y = geometric.weak_view_3d([vol, vol], None, (8, 8, 8), torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8, 8) and y is None


def test_weak_view_3d_draws_in_the_documented_order():
    """One volume after another: k, the flip axis, then the crop start along x, y and z,
    and nothing else (x != y here, so an odd quarter turn changes the start ranges)."""
    shape, patch, n = (14, 12, 9), (8, 8, 6), 40
    vols = [distinct_volume(shape, seed=i) for i in range(n)]
    gen = torch.Generator().manual_seed(4)
    g = replay(gen)
    x, _ = geometric.weak_view_3d(vols, None, patch, gen)
    for i, vol in enumerate(vols):
        k, axis = randint(g, 0, 4), randint(g, 0, 2)
        turned = torch.rot90(vol, k, dims=(1, 2)).flip(1 + axis)
        starts = [randint(g, 0, s - p) for s, p in zip(turned.shape[1:], patch)]
        crop = turned[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(starts, patch))]
        assert torch.equal(x[i], crop), i
    assert torch.equal(gen.get_state(), g.get_state())


# ---------------------------------------------------------------- 3D centre crop
@pytest.mark.parametrize("shape, patch, expected", [
    # x: start (11 - 8) // 2 = 1; y: 3 zeros, 1 before and 2 after; z: unchanged.
    ((11, 5, 8), (8, 8, 8), lambda v: np.pad(v[1:9], [(0, 0), (1, 2), (0, 0)])),
    # y: 5 zeros, 2 before and 3 after; x: start 2.
    ((12, 3, 8), (8, 8, 8), lambda v: np.pad(v[2:10], [(0, 0), (2, 3), (0, 0)])),
    # y: 12 zeros, 6 on each side.
    ((8, 4, 8), (8, 16, 8), lambda v: np.pad(v, [(0, 0), (6, 6), (0, 0)])),
    # nothing to pad: x from 2, y from 1, z whole.
    ((12, 10, 8), (8, 8, 8), lambda v: v[2:10, 1:9]),
])
def test_centre_crop_takes_the_middle_and_pads_the_odd_voxel_after(shape, patch, expected):
    vol = distinct_volume(shape)
    out = geometric.centre_crop(vol, patch)
    assert out.shape == (1, *patch) and np.array_equal(out[0].numpy(), expected(vol[0].numpy()))
