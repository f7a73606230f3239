"""The batch-wise torch views compute what the official per-sample CPU pipeline computes.

tests/test_crossmatch_step.py already checks the fast step's loss terms and gradients
against the five-call reference; this file covers the data side that the speed work moved
from per-sample PIL/scipy to batch-wise torch:

  * weak_view: rot90 + flip is an exact pixel permutation (one of the four reflections the
    official `np.rot90` + `np.flip` produce), the rotation angle is an integer in [-20, 20)
    and resamples like scipy.ndimage.rotate(order=0), the three branches have the official
    probabilities, and the label moves with the image;
  * gaussian_blur: equals a per-sample, written-out Gaussian (NumPy, no scipy/PIL) and
    stays close to PIL's GaussianBlur;
  * color_jitter: the batch result equals applying each sample's own factors one sample at
    a time (brightness, contrast, saturation, hue by their definitions; hue via colorsys);
    on 8-bit images it is within one grey level of PIL's ImageEnhance;
  * cutmix_boxes: boxes are rectangles whose area, aspect and frequency follow the official
    sampler (same bounds; two-sample KS test against a re-statement of that sampler);
  * quantize_8bit: the official `(img * 255).astype(np.uint8)` PIL conversion;
  * strong_view: the parts composed as the official pipeline composes them (jitter, then a
    blur with probability blur_p and sigma ~ U(blur_sigma), then 8 bits), with the blur
    drawn by the view itself (the official replay injects its strong views).
"""
from __future__ import annotations

import colorsys
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter
from scipy import ndimage, stats

from benchmarks.official_loop import cutmix_box as official_cutmix_box
from crossmatch_lite import views as V
from crossmatch_lite.views import views2d as A
from crossmatch_lite.config import ImagePerturbConfig


def phantom(size: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth image with an edge, texture and noise, in [0, 1]."""
    yy, xx = np.mgrid[:size, :size] / size
    img = (0.2 + 0.5 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.08) + 0.2 * np.sin(9 * xx) * np.cos(7 * yy)
           + 0.05 * np.random.default_rng(seed).standard_normal((size, size)))
    return np.clip(img, 0, 1).astype(np.float32)


def replay(gen: torch.Generator) -> torch.Generator:
    """A generator in the same state, to re-draw the random parameters a function used."""
    g = torch.Generator()
    g.set_state(gen.get_state())
    return g


# ---------------------------------------------------------------- weak view
def reflections(a: np.ndarray) -> list[np.ndarray]:
    """What np.rot90(a, k) followed by np.flip(axis) can give: the four reflections."""
    return [np.flip(a, 0), np.flip(a, 1), a.T, np.rot90(a, 2).T]


def weak_draws(gen: torch.Generator, b: int):
    """The parameters weak_view draws, in its order (rot_flip, rotate, k, flip axis, angle)."""
    g = replay(gen)
    rot_flip = torch.rand(b, generator=g) < 0.5
    rotate = ~rot_flip & (torch.rand(b, generator=g) < 0.5)
    torch.randint(0, 4, (b,), generator=g)
    torch.randint(0, 2, (b,), generator=g)
    angle = torch.randint(-20, 20, (b,), generator=g)
    return rot_flip, rotate, angle


def test_weak_view_branches_are_exact_permutations_and_scipy_rotations():
    b, s = 400, 24
    gen = torch.Generator().manual_seed(0)
    # Distinct pixel values, so equality of images means equality of pixel positions.
    base = torch.randperm(s * s, generator=torch.Generator().manual_seed(1)).float().view(s, s) / (s * s)
    images = base.expand(b, 1, s, s).clone()
    labels = (base * 4).long().clamp(max=3).expand(b, s, s).clone()
    rot_flip, rotate, angle = weak_draws(gen, b)
    out, out_lab = A.weak_view(images, labels, gen)

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


# ---------------------------------------------------------------- Gaussian blur
def reference_blur(img: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """A per-sample separable Gaussian written out in NumPy, edges replicated."""
    r = max(1, int(math.ceil(truncate * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    p = np.pad(img.astype(np.float64), r, mode="edge")
    rows = sum(k[j] * p[j:j + img.shape[0], :] for j in range(2 * r + 1))
    return sum(k[j] * rows[:, j:j + img.shape[1]] for j in range(2 * r + 1))


def test_batch_blur_equals_per_sample_reference_gaussian():
    cfg = ImagePerturbConfig()
    gen = torch.Generator().manual_seed(3)
    b, c = 6, 2
    x = torch.stack([torch.from_numpy(np.stack([phantom(seed=i), phantom(seed=i + 10)[::-1].copy()]))
                     for i in range(b)])
    sigma = A._uniform(gen, b, *cfg.blur_sigma)
    sigma[0], sigma[1] = cfg.blur_sigma[0], cfg.blur_sigma[1]  # both ends of the range
    apply = torch.tensor([True, True, True, False, True, False])
    out = A.gaussian_blur(x, sigma, apply, max_sigma=cfg.blur_sigma[1])
    for i in range(b):
        for ch in range(c):
            got = out[i, ch].numpy()
            if apply[i]:
                ref = reference_blur(x[i, ch].numpy(), float(sigma[i]))
                assert np.abs(got - ref).max() < 2e-3, (i, float(sigma[i]))  # kernel cut at 3 max-sigma
                assert np.abs(got - ref).mean() < 2e-4
            else:
                assert torch.equal(out[i, ch], x[i, ch])


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5, 2.0])
def test_blur_is_close_to_pil_gaussian_blur(sigma):
    """PIL approximates the Gaussian by box passes; on 8-bit images we stay within one grey
    level on average. (Below sigma 0.5 PIL's approximation blurs visibly more than a sampled
    Gaussian: up to ~2 levels mean at sigma 0.35; see docs/speed.md.)"""
    x8 = A.quantize_8bit(torch.from_numpy(phantom(64)))
    u8 = np.round(x8.numpy() * 255).astype(np.uint8)
    pil = np.asarray(Image.fromarray(u8).filter(ImageFilter.GaussianBlur(radius=sigma))) / 255.0
    ours = A.gaussian_blur(x8.view(1, 1, 64, 64), torch.tensor([sigma]), torch.tensor([True]), 2.0)[0, 0]
    diff = np.abs(ours.numpy() - pil) * 255
    assert diff.mean() < 1.0 and diff.max() < 6


# ---------------------------------------------------------------- colour jitter
def jitter_draws(gen: torch.Generator, b: int, cfg: ImagePerturbConfig):
    """The parameters color_jitter draws, in its order."""
    g = replay(gen)
    apply = torch.rand(b, generator=g) < cfg.jitter_p
    f = {}
    for name, lo, hi in (("brightness", 1 - cfg.brightness, 1 + cfg.brightness),
                         ("contrast", 1 - cfg.contrast, 1 + cfg.contrast),
                         ("saturation", 1 - cfg.saturation, 1 + cfg.saturation),
                         ("hue", -cfg.hue, cfg.hue)):
        f[name] = lo + (hi - lo) * torch.rand(b, generator=g)
    order = torch.argsort(torch.rand(b, 4, generator=g), dim=1)
    return apply, f, order


def gray(img: np.ndarray) -> np.ndarray:
    return img if img.shape[0] == 1 else (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]


def hue_shift(img: np.ndarray, shift: float) -> np.ndarray:
    out = np.empty_like(img)
    for yx in np.ndindex(img.shape[1:]):
        h, s, v = colorsys.rgb_to_hsv(*img[(slice(None), *yx)])
        out[(slice(None), *yx)] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
    return out


def reference_jitter(img: np.ndarray, apply: bool, f: dict, order: list[int]) -> np.ndarray:
    """One sample: the four adjustments by their definitions, in the drawn order."""
    if not apply:
        return img
    names = ["brightness", "contrast", "saturation", "hue"]
    x = img.astype(np.float64)
    for op in order:
        name = names[op]
        if name in ("saturation", "hue") and x.shape[0] == 1:
            continue  # no-ops on single-channel images, as for PIL 'L' images
        v = float(f[name])
        if name == "brightness":
            x = np.clip(x * v, 0, 1)
        elif name == "contrast":
            m = gray(x).mean()
            x = np.clip(m + v * (x - m), 0, 1)
        elif name == "saturation":
            g = gray(x)
            x = np.clip(g + v * (x - g), 0, 1)
        else:
            x = hue_shift(x, v)
    return x


@pytest.mark.parametrize("channels, size", [(1, 20), (3, 6)])
def test_batch_jitter_equals_per_sample_with_same_factors(channels, size):
    cfg = ImagePerturbConfig()
    b = 24
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(b, channels, size, size, generator=torch.Generator().manual_seed(8))
    apply, f, order = jitter_draws(gen, b, cfg)
    out = A.color_jitter(x, cfg, gen)
    assert 0 < int(apply.sum()) < b  # both branches exercised
    for i in range(b):
        ref = reference_jitter(x[i].numpy(), bool(apply[i]), {k: v[i] for k, v in f.items()}, order[i].tolist())
        assert np.abs(out[i].numpy() - ref).max() < 1e-5, i


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.2, 1.5])
def test_jitter_matches_pil_image_enhance_on_8bit(factor):
    """The official loader jitters 8-bit PIL images with ImageEnhance; we are within one level."""
    x8 = A.quantize_8bit(torch.from_numpy(phantom(40)))
    u8 = np.round(x8.numpy() * 255).astype(np.uint8)
    t = x8.view(1, 1, 40, 40)
    f = torch.tensor(factor).view(1, 1, 1, 1)
    for ours, enh in ((A._adjust_brightness(t, f), ImageEnhance.Brightness),
                      (A._adjust_contrast(t, f), ImageEnhance.Contrast)):
        pil = np.asarray(enh(Image.fromarray(u8)).enhance(factor)) / 255.0
        assert np.abs(ours[0, 0].numpy() - pil).max() * 255 <= 1.05


# ---------------------------------------------------------------- CutMix boxes
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
    boxes = A.cutmix_boxes(n, size, cfg, torch.Generator().manual_seed(11))
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


# ---------------------------------------------------------------- 8-bit conversion
def test_quantize_8bit_is_the_official_pil_conversion():
    x = torch.rand(4, 1, 33, 33, generator=torch.Generator().manual_seed(2))
    x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 254.5 / 255, 1 / 255])
    official = (x.numpy() * 255).astype(np.uint8).astype(np.float32) / 255.0
    assert torch.equal(A.quantize_8bit(x), torch.from_numpy(official))


# ---------------------------------------------------------------- strong view
def test_strong_view_jitters_then_blurs_each_sample_with_its_probability():
    b = 400
    u = A.quantize_8bit(torch.rand(b, 1, 12, 12, generator=torch.Generator().manual_seed(4)))
    # Blur alone, at a probability other than 1/2 and sigmas that always change a noise image:
    # how often the output differs from the input is how often the view blurred.
    cfg = ImagePerturbConfig(color_jitter=False, blur_p=0.3, blur_sigma=[0.5, 2.0])
    out = A.strong_view(u, cfg, torch.Generator().manual_seed(5))
    blurred = (out != u).flatten(1).any(1)
    sd = math.sqrt(cfg.blur_p * (1 - cfg.blur_p) / b)
    assert abs(blurred.float().mean().item() - cfg.blur_p) < 4 * sd
    # The official values, jitter included: jitter (drawing its own parameters first), then
    # blur_p and one sigma ~ U(blur_sigma) per sample, then the 8-bit image.
    cfg = ImagePerturbConfig()
    gen = torch.Generator().manual_seed(6)
    out = A.strong_view(u, cfg, gen)
    g = torch.Generator().manual_seed(6)  # the same draws, re-made here
    jittered = A.color_jitter(u, cfg, g)
    apply = torch.rand(b, generator=g) < cfg.blur_p
    sigma = cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * torch.rand(b, generator=g)
    expected = A.quantize_8bit(A.gaussian_blur(jittered, sigma, apply, max_sigma=cfg.blur_sigma[1]))
    assert torch.equal(out, expected)
    assert torch.equal(gen.get_state(), g.get_state())  # and nothing else is drawn


# ---------------------------------------------------------------- channels-last step
def test_channels_last_step_equals_reference_formulation():
    """Channels-last (on by default on CUDA, proposed for CPU) only changes the memory layout:
    the fast step's loss terms still equal the five-call, gather-based reference."""
    import copy

    from crossmatch_lite.config import Config
    from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from
    from crossmatch_lite.models.unet import UNet
    from benchmarks.reference_step import reference_terms

    cfg = Config()
    cfg.perturb.image.cutmix_p = 1.0
    b, s, thresh = 2, 32, 0.3
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(b, 1, s, s, generator=g), torch.randint(0, 4, (b, s, s), generator=g)
    u, m = torch.rand(b, 1, s, s, generator=g), torch.rand(b, 1, s, s, generator=g)
    v = V.make_unlabeled_views(u, m, cfg.perturb.image, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    # Element-wise dropout draws its mask in memory order, so with the same seed a
    # channels-last tensor gets another mask: switch it off to compare the math alone
    # (Dropout2d's per-channel masks do not depend on the layout and stay on).
    ref_model = UNet(1, 4, [8, 16, 32, 64, 128], encoder_dropout=(0.0,) * 5)
    model = copy.deepcopy(ref_model).to(memory_format=torch.channels_last)
    cl = lambda t: t.contiguous(memory_format=torch.channels_last)  # noqa: E731
    v_cl = V.UnlabeledViews(u_w=cl(v.u_w), m_w=cl(v.m_w), strong=[cl(t) for t in v.strong], boxes=v.boxes)
    torch.manual_seed(5)
    out = crossmatch_step(model, cl(x), y, v_cl, plan_from(cfg), thresh)
    torch.manual_seed(5)
    ref = reference_terms(ref_model, x, y, v.u_w, v.strong[0], v.strong[1], v.boxes[0], v.boxes[1], v.m_w,
                          thresh=thresh, eta=cfg.distill.eta)
    assert out.loss.item() == pytest.approx(ref["loss"].item(), abs=1e-5)
    for name, value in ref.items():
        if name != "loss":
            assert out.terms[name] == pytest.approx(value.item(), abs=1e-5), name


def test_unlabeled_weak_views_go_through_8_bit_as_the_official_pipeline():
    """The trainer's unlabeled weak view (Views2D.weak_unlabeled) is the 8-bit PIL round
    trip of the official loader: every value on the 1/255 grid; the labeled view is not."""
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    views = V.views_for(2)
    u = views.weak_unlabeled(images, torch.Generator().manual_seed(1))
    assert torch.equal(u, torch.floor(u * 255.0) / 255.0)
    x, _ = views.weak(images, torch.zeros(4, 32, 32, dtype=torch.long), torch.Generator().manual_seed(1))
    assert not torch.equal(x, torch.floor(x * 255.0) / 255.0)
