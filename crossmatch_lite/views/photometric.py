"""The photometric family: strong views, 2D (colour jitter, blur) and 3D (torchio bias
field, gamma, blur).

Distributions (those of the official loaders, AiEson/CrossMatch, and of the paper):

    2D  strong_view_2d (ACDC), images (B, C, H, W) in [0, 1]: with probability jitter_p
        ColorJitter(brightness, contrast, saturation, hue) (0.5, 0.5, 0.5, 0.25), factors
        and the order of the four adjustments drawn per sample as torchvision does
        (saturation and hue leave one-channel images unchanged, as for PIL 'L' images);
        then with probability blur_p a Gaussian blur, sigma ~ U(blur_sigma) = U(0.1, 2);
        then the 8-bit image. The official loader applies PIL to one sample at a time;
        here each sample keeps its own parameters and the batch is filtered at once.
    3D  strong_view_3d (LA), volumes (B, C, X, Y, Z): torchio, the library the official
        code uses, one volume at a time: with probability bias_gamma_p
        RandomBiasField(bias_coefficient) then RandomGamma(log_gamma); with probability
        blur_p RandomBlur(blur_sigma).

Random draws, all from the generator handed in, in this order:

    strong_view_2d  for the whole batch at once, every number drawn whatever a sample
                    does: if color_jitter, color_jitter's draws: torch.rand(B) (applied
                    where < jitter_p), then the factors torch.rand(B) each for brightness,
                    contrast, saturation and hue (all four, also for one-channel images),
                    then torch.rand(B, 4) (its argsort is the order of the adjustments);
                    if blur: torch.rand(B) (blurred where < blur_p), torch.rand(B) (sigma).
                    The 8-bit rounding draws nothing.
    strong_view_3d  one volume after another: if bias_gamma, rand() (< bias_gamma_p); if
                    blur, rand() (< blur_p); then always randint(0, 2**31 - 1), the seed
                    of that volume. torchio draws from torch's global generator: it is
                    seeded with that seed inside a fork_rng block, so RandomBiasField,
                    RandomGamma and RandomBlur draw from it in that order and torch's
                    global stream is left as it was.

Exact resume depends on this order: a checkpoint stores the generator's state, and the
resumed run equals the uninterrupted one only if it draws the same numbers in the same
order as the code that wrote it; a seed's recorded results depend on it in the same way.
The resume tests run the same code on both sides and would not notice a new order:
tests/test_views_photometric.py re-makes these draws one by one and is what fails.
The official ACDC replay (tests/test_official_replay.py) puts the official script's
recorded strong views in place of `strong_view_2d`, by that name and signature (u, cfg,
gen), and hands out one per call in the order make_unlabeled_views calls it for each
input (s1's, then s2's): keep the name, the signature and the calls; the draws inside
are replaced, so the replay does not check them. The official LA replay hands the step
its recorded strong views directly, without these draws.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import ImagePerturbConfig
from .draws import bernoulli, rand, randint, uniform
from .geometric import quantize_8bit


# ---------------------------------------------------------------- 2D colour jitter
def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of (B, C, H, W) images (C = 1 or 3)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _adjust_brightness(x, f):
    return (x * f).clamp(0, 1)


def _adjust_contrast(x, f):
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (mean + f * (x - mean)).clamp(0, 1)


def _adjust_saturation(x, f):
    g = _gray(x)
    return (g + f * (x - g)).clamp(0, 1)


def _adjust_hue(x, shift):
    """Rotate the hue of RGB images (B, 3, H, W) by `shift` (B,) turns (HSV round trip)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    h = (h + shift.view(-1, 1, 1)) % 1.0
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(x)
    for idx, (rr, gg, bb) in enumerate(choices):
        sel = (i == idx).unsqueeze(1)
        out = torch.where(sel, torch.stack([rr, gg, bb], 1), out)
    return out


def color_jitter(x: torch.Tensor, cfg: ImagePerturbConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W). ColorJitter(brightness, contrast, saturation, hue)
    applied with probability jitter_p, factors and the order of the four adjustments drawn
    per sample, as torchvision does. Saturation and hue leave a single-channel image
    unchanged, as they do for PIL 'L' images.
    """
    b = x.shape[0]
    dev = x.device
    apply = bernoulli(gen, b, cfg.jitter_p).to(dev)
    factors = {
        "brightness": uniform(gen, b, 1 - cfg.brightness, 1 + cfg.brightness),
        "contrast": uniform(gen, b, 1 - cfg.contrast, 1 + cfg.contrast),
        "saturation": uniform(gen, b, 1 - cfg.saturation, 1 + cfg.saturation),
        "hue": uniform(gen, b, -cfg.hue, cfg.hue),
    }
    order = torch.argsort(torch.rand(b, 4, generator=gen), dim=1).to(dev)
    ops = [("brightness", _adjust_brightness), ("contrast", _adjust_contrast)]
    if x.shape[1] == 3:
        ops += [("saturation", _adjust_saturation), ("hue", _adjust_hue)]
    out = x
    for step in range(4):
        for op_idx, (name, fn) in enumerate(ops):
            # No early exit on an empty selection: checking would sync the GPU every time.
            sel = apply & (order[:, step] == op_idx)
            f = factors[name].to(dev, x.dtype)
            moved = fn(out, f if name == "hue" else f.view(-1, 1, 1, 1))
            out = torch.where(sel.view(-1, 1, 1, 1), moved, out)
    return out


# ---------------------------------------------------------------- 2D Gaussian blur
def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): a per-sample Gaussian blur of sigma (B,) (separable,
    edge-replicating, kernel cut at 3 * max_sigma) where `apply` (B,) is set."""
    b, c, h, w = x.shape
    radius = int(math.ceil(3 * max_sigma))
    coords = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    sig = sigma.to(x.device, x.dtype).view(-1, 1)
    kernel = torch.exp(-0.5 * (coords.view(1, -1) / sig) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    kernel = kernel.repeat_interleave(c, dim=0)  # (b*c, k)
    flat = x.reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel.view(b * c, 1, -1, 1), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, -1), groups=b * c)
    blurred = flat.view(b, c, h, w)
    return torch.where(apply.to(x.device).view(-1, 1, 1, 1), blurred, x)


# ---------------------------------------------------------------- strong views
def strong_view_2d(u: torch.Tensor, cfg: ImagePerturbConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): colour jitter then blur, each per sample with its own
    probability, then the 8-bit image."""
    s = u
    if cfg.color_jitter:
        s = color_jitter(s, cfg, gen)
    if cfg.blur:
        b = u.shape[0]
        apply = bernoulli(gen, b, cfg.blur_p)
        sigma = uniform(gen, b, *cfg.blur_sigma)
        s = gaussian_blur(s, sigma, apply, max_sigma=cfg.blur_sigma[1])
    return quantize_8bit(s)


def strong_view_3d(u: torch.Tensor, cfg: ImagePerturbConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, C, X, Y, Z): bias field + gamma (p bias_gamma_p), then blur
    (p blur_p), each volume on its own."""
    import torchio as tio  # imported here: 2D runs never need it

    out = []
    for vol in u:
        do_bias_gamma = cfg.bias_gamma and rand(gen) < cfg.bias_gamma_p
        do_blur = cfg.blur and rand(gen) < cfg.blur_p
        seed = randint(gen, 0, 2**31 - 1)
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
