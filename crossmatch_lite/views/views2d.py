"""Image-level views of 2D images, built batch-wise with torch on the training device.

The official code augments one sample at a time on the CPU with PIL and scipy. Here
each sample still gets its own random parameters, drawn from the same distributions,
but the pixels of the whole batch are transformed at once, on whatever device trains.
All random draws come from one CPU `torch.Generator`, so a seed gives the same views
on CPU and GPU.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from ..config import ImagePerturbConfig


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _bernoulli(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


# ---------------------------------------------------------------- weak (geometric) view
def weak_view(images: torch.Tensor, labels: torch.Tensor | None, gen: torch.Generator):
    """Random rot90 + flip (p 0.5), else a rotation by an integer angle in [-20, 20) degrees
    (p 0.25), else unchanged; nearest-neighbour, zero fill, as scipy.ndimage with order=0.

    Every case is one affine map of the square image, so the whole batch is resampled
    by a single grid_sample call; image and label move together.
    """
    b = images.shape[0]
    rot_flip = _bernoulli(gen, b, 0.5)
    rotate = ~rot_flip & _bernoulli(gen, b, 0.5)
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
    """The official unlabeled pipeline goes through an 8-bit PIL image: floor(x*255)/255."""
    return torch.floor(x.clamp(0, 1) * 255.0) / 255.0


# ---------------------------------------------------------------- colour jitter
def _gray(x: torch.Tensor) -> torch.Tensor:
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
    """Rotate the hue of RGB images by `shift` turns (HSV round trip)."""
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
    """ColorJitter(brightness, contrast, saturation, hue) applied with probability jitter_p,
    factors and the order of the four adjustments drawn per sample, as torchvision does.
    Saturation and hue leave a single-channel image unchanged, as they do for PIL 'L' images.
    """
    b = x.shape[0]
    dev = x.device
    apply = _bernoulli(gen, b, cfg.jitter_p).to(dev)
    factors = {
        "brightness": _uniform(gen, b, 1 - cfg.brightness, 1 + cfg.brightness),
        "contrast": _uniform(gen, b, 1 - cfg.contrast, 1 + cfg.contrast),
        "saturation": _uniform(gen, b, 1 - cfg.saturation, 1 + cfg.saturation),
        "hue": _uniform(gen, b, -cfg.hue, cfg.hue),
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


# ---------------------------------------------------------------- Gaussian blur
def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Per-sample Gaussian blur (separable, edge-replicating) where `apply` is set."""
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


# ---------------------------------------------------------------- CutMix boxes
def cutmix_boxes(b: int, size: int, cfg: ImagePerturbConfig, gen: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(b, size, size) {0, 1} masks: with probability cutmix_p a box of area a*size^2,
    a ~ U(area), aspect ratio ~ U(ratio), placed uniformly so that it fits (re-drawing
    ratio and corner until it does, as the official sampler does); else empty.
    """
    boxes = torch.zeros(b, size, size)
    for i in range(b):
        if not cfg.cutmix or torch.rand(1, generator=gen).item() >= cfg.cutmix_p:
            continue
        area = _uniform(gen, 1, *cfg.cutmix_area).item() * size * size
        while True:
            ratio = _uniform(gen, 1, *cfg.cutmix_ratio).item()
            bw, bh = int(math.sqrt(area / ratio)), int(math.sqrt(area * ratio))
            x0, y0 = torch.randint(0, size, (2,), generator=gen).tolist()
            if x0 + bw <= size and y0 + bh <= size:
                break
        boxes[i, y0:y0 + bh, x0:x0 + bw] = 1.0
    return boxes.to(device)


# ---------------------------------------------------------------- strong views
def strong_view(u: torch.Tensor, cfg: ImagePerturbConfig, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter then blur, each per sample with its own probability."""
    s = u
    if cfg.color_jitter:
        s = color_jitter(s, cfg, gen)
    if cfg.blur:
        b = u.shape[0]
        apply = _bernoulli(gen, b, cfg.blur_p)
        sigma = _uniform(gen, b, *cfg.blur_sigma)
        s = gaussian_blur(s, sigma, apply, max_sigma=cfg.blur_sigma[1])
    return quantize_8bit(s)
