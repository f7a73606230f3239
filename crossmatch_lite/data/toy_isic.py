"""Dermoscopy-like RGB images with a binary lesion mask.

What makes real ISIC hard is reproduced on purpose: irregular (noisy radial) borders
that fade into the skin, lesion and skin colours that vary a lot (from pale to dark skin,
pink to black lesions, some barely darker than the skin), dark hair strands crossing
lesion and skin, freckles that are not the lesion, camera colour casts and vignetting
with the dark ring of the dermoscope. Images are returned as uint8, like the JPEGs that
data_download prepares, and drawn from one fixed data seed.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from .toy_acdc import smooth_field

DATA_SEED = 20240503
CLASS_NAMES = ("background", "lesion")
NATIVE = 96
SKIN = np.float32([[0.96, 0.82, 0.74], [0.86, 0.66, 0.54], [0.66, 0.46, 0.34], [0.42, 0.28, 0.20]])
LESION = np.float32([[0.40, 0.24, 0.16], [0.22, 0.13, 0.10], [0.55, 0.30, 0.30], [0.30, 0.28, 0.36]])


def hair_layer(rng, n: int) -> np.ndarray:
    """Alpha map of 0-12 curved dark strands, antialiased by drawing at 3x and shrinking."""
    k = 3
    canvas = Image.new("L", (n * k, n * k), 0)
    draw = ImageDraw.Draw(canvas)
    count = int(rng.choice([0, 0, rng.integers(1, 5), rng.integers(4, 13)]))
    for _ in range(count):
        p0, p1, p2 = rng.uniform(-0.2 * n, 1.2 * n, (3, 2)) * k
        t = np.linspace(0, 1, 40)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2  # quadratic Bezier
        draw.line([tuple(p) for p in pts], fill=255, width=int(rng.integers(2, 6)), joint="curve")
    return np.asarray(canvas.resize((n, n), Image.BOX), np.float32) / 255


@lru_cache(maxsize=None)  # repeated loads in one process (tests, sweeps) cost nothing
def image(idx: int) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, mask (H, W) uint8 {0,1}) for image idx."""
    rng = np.random.default_rng([DATA_SEED, 2, idx])
    n = NATIVE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)

    w = rng.dirichlet(np.ones(len(SKIN)) * 0.5).astype(np.float32)
    skin = w @ SKIN
    cast = (1 + rng.uniform(-0.15, 0.15, 3)).astype(np.float32)  # per-camera white balance
    rgb = skin[None, None] * (1 + 0.06 * smooth_field(rng, (n, n), 6)[..., None])
    redness = np.clip(smooth_field(rng, (n, n), 5), 0, None)[..., None]
    rgb = rgb * (1 - 0.12 * redness * np.array([0, 1, 1]))

    # Lesion: a radius that wanders with angle, plus an elliptic stretch.
    cy, cx = (n / 2 + rng.uniform(-14, 14, 2)).astype(np.float32)
    r0 = rng.uniform(10, 30)
    ang, stretch = rng.uniform(0, np.pi), rng.uniform(0.65, 1.0)
    u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
    v = (-(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) / stretch
    phi, rho = np.arctan2(v, u), np.hypot(u, v)
    ks = np.arange(2, 12, dtype=np.float32)
    amp = rng.normal(0, 0.22 / ks ** 0.9).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, len(ks)).astype(np.float32)
    grid = np.linspace(-np.pi, np.pi, 361, dtype=np.float32)  # evaluate r(phi) in 1D, then look it up
    profile = r0 * np.exp(amp @ np.cos(ks[:, None] * grid + phase[:, None]))
    radius = np.interp(phi, grid, profile).astype(np.float32)
    mask = rho <= radius

    lw = rng.dirichlet(np.ones(len(LESION)) * 0.4).astype(np.float32)
    lesion_col = lw @ LESION
    strength = rng.choice([rng.uniform(0.25, 0.5), rng.uniform(0.6, 0.9)], p=[0.7, 0.3])  # 30 % faint
    lesion_col = skin * np.float32(1 - strength) + lesion_col * np.float32(strength)
    mottle = 1 + 0.25 * smooth_field(rng, (n, n), 8)[..., None]
    core = np.clip(1 - rho / (radius + 1e-6), 0, 1)[..., None] * rng.uniform(0, 0.5)  # darker centre
    softness = rng.uniform(0.5, 4.0)
    alpha = 1 / (1 + np.exp(-(radius - rho) / softness))[..., None]
    rgb = rgb * (1 - alpha) + alpha * lesion_col * mottle * (1 - core)

    for _ in range(int(rng.integers(0, 6))):  # freckles: dark but not the lesion
        fy, fx = rng.uniform(0, n, 2)
        spot = np.exp(-((yy - fy) ** 2 + (xx - fx) ** 2) / (2 * rng.uniform(0.8, 2.0) ** 2))[..., None]
        rgb = rgb * (1 - 0.5 * spot)

    hair = hair_layer(rng, n)[..., None]
    rgb = rgb * (1 - hair) + hair * rng.uniform(0.03, 0.25) * np.array([1.0, 0.85, 0.75])

    ry, rx = (yy - n / 2) / (n / 2), (xx - n / 2) / (n / 2)
    r2 = ry ** 2 + rx ** 2
    rgb = rgb * (1 - rng.uniform(0, 0.45) * r2)[..., None]  # vignetting
    if rng.random() < 0.35:  # dermoscope ring
        rgb = rgb * (1 / (1 + np.exp((np.sqrt(r2) - rng.uniform(0.95, 1.3)) * 25)))[..., None]
    rgb = gaussian_filter(rgb * cast, (0.6, 0.6, 0)) + rng.normal(0, rng.uniform(0.005, 0.03), rgb.shape).astype(np.float32)
    img, mask = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8)
    for a in (img, mask):
        a.setflags(write=False)  # shared through the cache: callers get copies (see toy.py)
    return img, mask
