"""The photometric family (crossmatch_lite/views/photometric.py): the strong views, 2D and
3D, compute what the official pipelines compute.

tests/test_crossmatch_step.py already checks the fast step's loss terms and gradients
against the five-call reference; this file covers the strong views, which the speed work
moved from per-sample PIL to batch-wise torch in 2D:

  * gaussian_blur: equals a per-sample, written-out Gaussian (NumPy, no scipy/PIL) and
    stays close to PIL's GaussianBlur;
  * color_jitter: the batch result equals applying each sample's own factors one sample at
    a time (brightness, contrast, saturation, hue by their definitions; hue via colorsys);
    on 8-bit images it is within one grey level of PIL's ImageEnhance;
  * strong_view_2d: the parts composed as the official pipeline composes them (jitter, then
    a blur with probability blur_p and sigma ~ U(blur_sigma), then 8 bits), with the blur
    drawn by the view itself (the official replay injects its strong views);
  * strong_view_3d: with torchio's transforms replaced by recorders, bias field then gamma
    run with probability bias_gamma_p, blur with probability blur_p, independently and
    with the configured parameters, and torch's global generator is left as it was; the
    branches and the seed of each volume are the draws the module's docstring lists, in
    that order (exact resume depends on it; the 2D order is re-made by
    test_strong_view_jitters_then_blurs_each_sample_with_its_probability).
  * dtypes and devices: jitter and blur keep a float64 or bf16 image in its dtype and run
    on the images' device (the meta device stands in for a GPU); the 3D view hands back
    the batch's dtype.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from crossmatch_lite.config import ImagePerturbConfig
from crossmatch_lite.views import draws, geometric, photometric as P
from view_stats import assert_binomial, la_image_cfg, replay


def phantom(size: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth image with an edge, texture and noise, in [0, 1]."""
    yy, xx = np.mgrid[:size, :size] / size
    img = (0.2 + 0.5 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.08) + 0.2 * np.sin(9 * xx) * np.cos(7 * yy)
           + 0.05 * np.random.default_rng(seed).standard_normal((size, size)))
    return np.clip(img, 0, 1).astype(np.float32)


# ---------------------------------------------------------------- 2D Gaussian blur
def reference_blur(img: np.ndarray, sigma: float, truncate: float = 4.0, radius: int | None = None) -> np.ndarray:
    """A per-sample separable Gaussian written out in NumPy, edges replicated; cut at
    `radius` pixels, by default at `truncate` sigmas."""
    r = radius if radius is not None else max(1, int(math.ceil(truncate * sigma)))
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
    sigma = draws.uniform(gen, b, *cfg.blur_sigma)
    sigma[0], sigma[1] = cfg.blur_sigma[0], cfg.blur_sigma[1]  # both ends of the range
    apply = torch.tensor([True, True, True, False, True, False])
    out = P.gaussian_blur(x, sigma, apply, max_sigma=cfg.blur_sigma[1])
    cut = math.ceil(3 * cfg.blur_sigma[1])  # every sample's kernel is cut at 3 max-sigma
    for i in range(b):
        for ch in range(c):
            got = out[i, ch].numpy()
            if apply[i]:
                ref = reference_blur(x[i, ch].numpy(), float(sigma[i]))
                assert np.abs(got - ref).max() < 2e-3, (i, float(sigma[i]))  # the uncut Gaussian, nearly
                assert np.abs(got - ref).mean() < 2e-4
                ref = reference_blur(x[i, ch].numpy(), float(sigma[i]), radius=cut)
                assert np.abs(got - ref).max() < 1e-5, (i, float(sigma[i]))  # the cut one, exactly
            else:
                assert torch.equal(out[i, ch], x[i, ch])


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5, 2.0])
def test_blur_is_close_to_pil_gaussian_blur(sigma):
    """PIL approximates the Gaussian by box passes; on 8-bit images we stay within one grey
    level on average. (Below sigma 0.5 PIL's approximation blurs visibly more than a sampled
    Gaussian: up to ~2 levels mean at sigma 0.35; see docs/speed.md.)"""
    x8 = geometric.quantize_8bit(torch.from_numpy(phantom(64)))
    u8 = np.round(x8.numpy() * 255).astype(np.uint8)
    pil = np.asarray(Image.fromarray(u8).filter(ImageFilter.GaussianBlur(radius=sigma))) / 255.0
    ours = P.gaussian_blur(x8.view(1, 1, 64, 64), torch.tensor([sigma]), torch.tensor([True]), 2.0)[0, 0]
    diff = np.abs(ours.numpy() - pil) * 255
    assert diff.mean() < 1.0 and diff.max() < 6


# ---------------------------------------------------------------- 2D colour jitter
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
    out = P.color_jitter(x, cfg, gen)
    assert 0 < int(apply.sum()) < b  # both branches exercised
    for i in range(b):
        ref = reference_jitter(x[i].numpy(), bool(apply[i]), {k: v[i] for k, v in f.items()}, order[i].tolist())
        assert np.abs(out[i].numpy() - ref).max() < 1e-5, i


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.2, 1.5])
def test_jitter_matches_pil_image_enhance_on_8bit(factor):
    """The official loader jitters 8-bit PIL images with ImageEnhance; we are within one level."""
    x8 = geometric.quantize_8bit(torch.from_numpy(phantom(40)))
    u8 = np.round(x8.numpy() * 255).astype(np.uint8)
    t = x8.view(1, 1, 40, 40)
    f = torch.tensor(factor).view(1, 1, 1, 1)
    for ours, enh in ((P._adjust_brightness(t, f), ImageEnhance.Brightness),
                      (P._adjust_contrast(t, f), ImageEnhance.Contrast)):
        pil = np.asarray(enh(Image.fromarray(u8)).enhance(factor)) / 255.0
        assert np.abs(ours[0, 0].numpy() - pil).max() * 255 <= 1.05


# ---------------------------------------------------------------- 2D strong view
def test_strong_view_jitters_then_blurs_each_sample_with_its_probability():
    b = 400
    u = geometric.quantize_8bit(torch.rand(b, 1, 12, 12, generator=torch.Generator().manual_seed(4)))
    # Blur alone, at a probability other than 1/2 and sigmas that always change a noise image:
    # how often the output differs from the input is how often the view blurred.
    cfg = ImagePerturbConfig(color_jitter=False, blur_p=0.3, blur_sigma=[0.5, 2.0])
    out = P.strong_view_2d(u, cfg, torch.Generator().manual_seed(5))
    blurred = (out != u).flatten(1).any(1)
    sd = math.sqrt(cfg.blur_p * (1 - cfg.blur_p) / b)
    assert abs(blurred.float().mean().item() - cfg.blur_p) < 4 * sd
    # The official values, jitter included: jitter (drawing its own parameters first), then
    # blur_p and one sigma ~ U(blur_sigma) per sample, then the 8-bit image.
    cfg = ImagePerturbConfig()
    gen = torch.Generator().manual_seed(6)
    out = P.strong_view_2d(u, cfg, gen)
    g = torch.Generator().manual_seed(6)  # the same draws, re-made here
    jittered = P.color_jitter(u, cfg, g)
    apply = torch.rand(b, generator=g) < cfg.blur_p
    sigma = cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * torch.rand(b, generator=g)
    expected = geometric.quantize_8bit(P.gaussian_blur(jittered, sigma, apply, max_sigma=cfg.blur_sigma[1]))
    assert torch.equal(out, expected)
    assert torch.equal(gen.get_state(), g.get_state())  # and nothing else is drawn


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.bfloat16, 6e-2)])
def test_strong_view_2d_parts_keep_the_input_dtype(dtype, tol):
    """Jitter and blur compute in the image's dtype (their factors, sigmas and kernels cast
    to it) and give the float32 result up to that dtype's rounding (bf16 keeps 8 bits:
    a few 1/128 steps over the chain of adjustments)."""
    cfg = ImagePerturbConfig()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    want = P.color_jitter(x, cfg, torch.Generator().manual_seed(1))
    got = P.color_jitter(x.to(dtype), cfg, torch.Generator().manual_seed(1))
    assert got.dtype == dtype and (got.float() - want).abs().max() < tol
    sigma, apply = torch.linspace(0.1, 2.0, 6), torch.ones(6, dtype=torch.bool)
    want = P.gaussian_blur(x, sigma, apply, max_sigma=2.0)
    got = P.gaussian_blur(x.to(dtype), sigma, apply, max_sigma=2.0)
    assert got.dtype == dtype and (got.float() - want).abs().max() < tol


def test_strong_view_2d_runs_on_the_batch_s_device():
    """Draws are made on the CPU generator and moved to the images' device; the meta device
    stands in for a GPU (a tensor left on the CPU would refuse to mix with it)."""
    cfg = ImagePerturbConfig()
    x = torch.rand(4, 3, 8, 8).to("meta")
    for out in (P.color_jitter(x, cfg, torch.Generator().manual_seed(0)),
                P.gaussian_blur(x, torch.rand(4), torch.ones(4, dtype=torch.bool), max_sigma=2.0),
                P.strong_view_2d(x, cfg, torch.Generator().manual_seed(0))):
        assert out.device.type == "meta" and out.shape == x.shape and out.dtype == x.dtype


def test_strong_view_3d_hands_back_the_volumes_dtype():
    """torchio computes in float32; the view casts its result back to the batch's dtype."""
    cfg = la_image_cfg(bias_gamma_p=1.0, blur_p=1.0)
    u = torch.rand(2, 1, 6, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5
    out = P.strong_view_3d(u, cfg, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.shape == u.shape and not torch.equal(out, u)


# ---------------------------------------------------------------- 3D strong view
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
    out = P.strong_view_3d(u, cfg, torch.Generator().manual_seed(0))
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


@pytest.mark.parametrize("changes", [{}, {"bias_gamma": False}, {"blur": False}])
def test_strong_view_3d_draws_in_the_documented_order(monkeypatch, changes):
    """One volume after another: the bias field and gamma draw (only with bias_gamma on),
    the blur draw (only with blur on), then the volume's seed, and nothing else; torchio's
    transforms of that volume run under that seed."""
    import torchio

    log: list = []
    for name in ("RandomBiasField", "RandomGamma", "RandomBlur"):
        monkeypatch.setattr(torchio, name, type(name, (Recorder,), {"log": log}))
    cfg = la_image_cfg(**changes)
    n = 60
    u = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 1, 2, 2, 2)
    gen = torch.Generator().manual_seed(1)
    g = replay(gen)
    P.strong_view_3d(u, cfg, gen)
    for i in range(n):
        bias = cfg.bias_gamma and draws.rand(g) < cfg.bias_gamma_p
        blur = cfg.blur and draws.rand(g) < cfg.blur_p
        seed = draws.randint(g, 0, 2**31 - 1)
        want = (["RandomBiasField", "RandomGamma"] if bias else []) + (["RandomBlur"] if blur else [])
        assert [(name, s) for name, j, _, s in log if j == i] == [(name, seed) for name in want], i
    assert torch.equal(gen.get_state(), g.get_state())
