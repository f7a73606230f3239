"""Cardiac-MRI-like phantoms: short-axis stacks with RV, myocardium and LV.

Built to make the semi-supervised question visible in minutes. Anatomy is easy and
consistent (a large heart, bright blood, a dark myocardial ring several pixels thick),
so a few labeled patients quickly give confident foreground predictions. What changes
from patient to patient is mostly the *acquisition*: global brightness, contrast and
gamma, blur, noise level and bias field, drawn wide enough that three labeled patients
do not cover them. That is the kind of variation CrossMatch's strong views (brightness/
contrast jitter, blur, CutMix) bridge on the unlabeled patients and the supervised
baseline, which sees only geometric augmentation, does not. Variation no augmentation
bridges (inverted or dark-blood contrast) is deliberately absent: it only makes an early
teacher confidently wrong. Labels follow ACDC: 1 RV cavity, 2 myocardium, 3 LV cavity
(papillary muscles inside the LV count as LV, as in ACDC's ground truth).
Everything is drawn from one fixed data seed, so every run sees the same patients.
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

DATA_SEED = 20240502
CLASS_NAMES = ("background", "RV", "Myo", "LV")
NATIVE = 96


def smooth_field(rng, shape, cells=4) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: bias fields, texture, organ boundaries."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize(shape[::-1], Image.BICUBIC))


def contrast_for(rng) -> dict:
    """Tissue levels (one bright-blood look, mildly varied) and the acquisition of one patient.

    The acquisition ranges are what strong views imitate (brightness and contrast factors in
    [0.5, 1.5], blur sigma up to 2): wide enough that three labeled patients leave much of them
    unseen, not so wide that an early teacher is confidently wrong on most unlabeled patients.
    RV blood is a little darker than LV blood (slower flow), a cue that survives any global change.
    """
    u = rng.uniform
    return {"blood": u(0.85, 1.0), "rv": u(0.72, 0.8), "myo": u(0.15, 0.25), "tissue": u(0.42, 0.52),
            "lung": u(0.0, 0.10), "fat": u(0.45, 0.55), "liver": u(0.35, 0.45),
            "noise": u(0.01, 0.06), "bias": u(0.0, 0.3), "blur": u(0.3, 1.8),
            "gamma": float(np.exp(u(-0.3, 0.3))),
            "brightness": float(np.exp(u(np.log(0.6), np.log(1.25)))),
            "contrast": u(0.55, 1.15)}


def describe(look: dict) -> str:
    """A short name for a patient's acquisition (for plots and notebooks)."""
    parts = []
    if look["brightness"] < 0.7:
        parts.append("dim")
    elif look["brightness"] > 1.15:
        parts.append("bright")
    if look["contrast"] < 0.65:
        parts.append("flat")
    if look["blur"] > 1.5:
        parts.append("blurred")
    if look["noise"] > 0.06:
        parts.append("noisy")
    return "_".join(parts) or "typical"


def _anatomy(rng, look: dict) -> SimpleNamespace:
    """One patient's body and heart: positions, sizes, shape irregularity, bias field."""
    n = NATIVE
    a = SimpleNamespace(n=n)
    a.yy, a.xx = np.mgrid[0:n, 0:n].astype(np.float32)
    a.nz = int(rng.integers(8, 11))
    a.body_a, a.body_b = rng.uniform(40, 46), rng.uniform(32, 38)
    a.body_c = (n / 2 + rng.uniform(-2, 2), n / 2 + rng.uniform(-2, 2))
    a.heart_c = np.array([n / 2 + rng.uniform(-6, 6), n / 2 + rng.uniform(-6, 6)])
    a.theta = rng.uniform(0, 2 * np.pi)  # direction of the RV from the LV
    a.r_lv, a.wall = rng.uniform(12, 16), rng.uniform(6, 8)
    a.ecc = rng.uniform(0.9, 1.1)
    a.rv_long, a.rv_short = rng.uniform(1.3, 1.7), rng.uniform(0.75, 1.0)
    a.harm = rng.normal(0, 0.04, (3, 2))  # patient-specific LV shape irregularity
    a.lung_side = rng.uniform(0.9, 1.1)
    a.bias = np.clip(smooth_field(rng, (n, n), 3), -1.5, 1.5) * look["bias"]
    a.body = ((a.yy - a.body_c[0]) / a.body_b) ** 2 + ((a.xx - a.body_c[1]) / a.body_a) ** 2
    return a


def _background(a: SimpleNamespace, look: dict, t: float) -> np.ndarray:
    """Distractors that carry no label: lungs, liver (towards the apex), fat under the skin."""
    yy, xx, n = a.yy, a.xx, a.n
    tissue = np.full((n, n), look["tissue"], np.float32)
    for side in (-1, 1):
        ly, lx = a.body_c[0] - 4, a.body_c[1] + side * a.body_a * 0.62 * a.lung_side
        lung = ((yy - ly) / (a.body_b * 0.65)) ** 2 + ((xx - lx) / (a.body_a * 0.25)) ** 2 < 1
        tissue[lung] = look["lung"]
    if t > 0.5:
        liver = ((yy - a.body_c[0] - a.body_b * 0.6) / (a.body_b * 0.35)) ** 2 \
            + ((xx - a.body_c[1] + 6) / (a.body_a * 0.55)) ** 2 < 1
        tissue[liver] = look["liver"]
    tissue[(a.body > 0.85) & (a.body <= 1)] = look["fat"]
    tissue[a.body > 1] = 0.0
    return tissue


def _slice(rng, a: SimpleNamespace, look: dict, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of the short-axis slice at height t (0 base .. 1 apex)."""
    yy, xx = a.yy, a.xx
    scale = 1 - 0.45 * t ** 1.5
    cy, cx = a.heart_c + rng.normal(0, 1.0, 2)
    th = a.theta + rng.normal(0, 0.08)
    uu = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    phi = np.arctan2(v, uu)
    wobble = 1 + sum(h * np.cos((k + 2) * phi + b) for k, (h, b) in enumerate(a.harm))
    rho = np.sqrt((uu * a.ecc) ** 2 + (v / a.ecc) ** 2) / wobble
    r = a.r_lv * scale * rng.uniform(0.95, 1.05)
    w = a.wall * (1 + 0.15 * t) * rng.uniform(0.92, 1.08)
    lv, myo_out = rho <= r, rho <= r + w

    label = np.zeros((a.n, a.n), np.uint8)
    tissue = _background(a, look, t)
    if t < 0.85:  # the RV shrinks and vanishes towards the apex
        rs = (r + w) * (1 - 0.4 * t)
        ru = (uu - (r + w) * 0.85) / (rs * a.rv_short)
        rv = (ru ** 2 + (v / (rs * a.rv_long)) ** 2 <= 1) & (rho > r + w) & (uu > 0)
        label[rv] = 1
        tissue[rv] = look["blood"] * look["rv"]
    label[myo_out] = 2
    label[lv] = 3
    tissue[myo_out] = look["myo"]
    tissue[lv] = look["blood"]
    # A papillary muscle now and then: a muscle-dark spot labeled LV.
    if rng.uniform() < 0.3:
        ang = th + np.pi + rng.uniform(-1, 1)
        py, px = cy + 0.6 * r * np.sin(ang), cx + 0.6 * r * np.cos(ang)
        tissue[((yy - py) ** 2 + (xx - px) ** 2 < (0.15 * r) ** 2) & lv] = look["myo"]

    img = gaussian_filter(tissue, look["blur"]) * np.exp(a.bias)
    noise = rng.normal(0, look["noise"], (2, a.n, a.n))
    return np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2), label  # magnitude images have Rician noise


@lru_cache(maxsize=None)  # repeated loads in one process (tests, sweeps) cost nothing
def patient(pid: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], str]:
    """(image (Z, H, W) float32 in [0,1], label (Z, H, W) uint8, spacing, look) for patient pid."""
    rng = np.random.default_rng([DATA_SEED, 2, pid])
    look = contrast_for(rng)
    a = _anatomy(rng, look)
    slices = [_slice(rng, a, look, z / max(a.nz - 1, 1)) for z in range(a.nz)]
    vol = np.stack([img for img, _ in slices]).astype(np.float32)
    vol = (vol - vol.min()) / (vol.max() - vol.min())  # per-volume min-max, like the ACDC h5 files
    # The scanner's global look survives the normalisation: gamma, then contrast about the
    # volume mean and brightness, as the strong views' colour jitter does it.
    vol = vol ** look["gamma"]
    mean = float(vol.mean())
    vol = np.clip((mean + look["contrast"] * (vol - mean)) * look["brightness"], 0.0, 1.0).astype(np.float32)
    spacing = (float(rng.choice([8.0, 10.0])), *(2 * [float(np.round(rng.uniform(1.3, 1.8), 4))]))
    lab = np.stack([label for _, label in slices])
    for arr in (vol, lab):
        arr.setflags(write=False)  # shared through the cache: callers get copies (see toy.py)
    return vol, lab, spacing, describe(look)
