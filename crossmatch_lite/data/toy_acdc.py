"""Cardiac-MRI-like phantoms: short-axis stacks with RV, myocardium and LV.

Built to make the semi-supervised question visible in minutes: shapes, position,
orientation and above all *contrast* change from patient to patient (bright-blood,
dark-blood and low-contrast looks, different tissue levels, noise and bias fields), so a
handful of labeled patients cannot show the network every appearance, while the
unlabeled patients can. Labels follow ACDC: 1 RV cavity, 2 myocardium, 3 LV cavity
(papillary muscles inside the LV count as LV, as in ACDC's ground truth).
Everything is drawn from one fixed data seed, so every run sees the same patients.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

DATA_SEED = 20240502
CLASS_NAMES = ("background", "RV", "Myo", "LV")
NATIVE = 96
# (name, probability, blood range, myocardium range, surrounding tissue range)
LOOKS = (
    ("bright_blood", 0.55, (0.75, 1.00), (0.15, 0.35), (0.40, 0.60)),
    ("low_contrast", 0.20, (0.55, 0.70), (0.30, 0.42), (0.45, 0.58)),
    ("dark_blood", 0.15, (0.05, 0.20), (0.55, 0.75), (0.30, 0.45)),
    ("inverted", 0.10, (0.10, 0.30), (0.75, 0.95), (0.45, 0.60)),
)


def smooth_field(rng, shape, cells=4) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: bias fields, texture, organ boundaries."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize(shape[::-1], Image.BICUBIC))


def contrast_for(rng) -> dict:
    looks = [lk for lk in LOOKS]
    k = rng.choice(len(looks), p=[lk[1] for lk in looks])
    name, _, blood, myo, tissue = looks[k]
    u = lambda r: rng.uniform(*r)  # noqa: E731
    return {"look": name, "blood": u(blood), "myo": u(myo), "tissue": u(tissue),
            "lung": rng.uniform(0.0, 0.12), "fat": rng.uniform(0.55, 0.85), "liver": rng.uniform(0.2, 0.6),
            "noise": rng.uniform(0.02, 0.07), "bias": rng.uniform(0.05, 0.3), "blur": rng.uniform(0.4, 1.1),
            "gamma": float(np.exp(rng.uniform(-0.25, 0.25)))}


@lru_cache(maxsize=None)  # repeated loads in one process (tests, sweeps) cost nothing
def patient(pid: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], str]:
    """(image (Z, H, W) float32 in [0,1], label (Z, H, W) uint8, spacing, look) for patient pid."""
    rng = np.random.default_rng([DATA_SEED, 1, pid])
    look = contrast_for(rng)
    n = NATIVE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    nz = int(rng.integers(8, 11))
    body_a, body_b = rng.uniform(36, 46), rng.uniform(28, 38)
    body_c = (n / 2 + rng.uniform(-3, 3), n / 2 + rng.uniform(-3, 3))
    heart_c = np.array([n / 2 + rng.uniform(-10, 10), n / 2 + rng.uniform(-10, 10)])
    theta = rng.uniform(0, 2 * np.pi)  # direction of the RV from the LV
    r_lv, wall = rng.uniform(9, 15), rng.uniform(3, 6)
    ecc = rng.uniform(0.85, 1.15)
    rv_long, rv_short = rng.uniform(1.2, 1.7), rng.uniform(0.6, 1.0)
    harm = rng.normal(0, 0.05, (3, 2))  # patient-specific LV shape irregularity
    lung_side = rng.uniform(0.8, 1.2)
    # Clipped so that min-max normalisation never leaves the heart in the dark (as real scans rarely do).
    bias = np.clip(smooth_field(rng, (n, n), 3), -1.5, 1.5) * look["bias"]

    body = ((yy - body_c[0]) / body_b) ** 2 + ((xx - body_c[1]) / body_a) ** 2
    images, labels = [], []
    for z in range(nz):
        t = z / max(nz - 1, 1)  # 0 base .. 1 apex
        scale = 1 - 0.6 * t ** 1.4
        cy, cx = heart_c + rng.normal(0, 1.2, 2)
        th = theta + rng.normal(0, 0.08)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        phi = np.arctan2(v, u)
        wobble = 1 + sum(a * np.cos((k + 2) * phi + b) for k, (a, b) in enumerate(harm))
        rho = np.sqrt((u * ecc) ** 2 + (v / ecc) ** 2) / wobble
        r = r_lv * scale * rng.uniform(0.95, 1.05)
        w = wall * (1 + 0.3 * t) * rng.uniform(0.9, 1.1)
        lv, myo_out = rho <= r, rho <= r + w

        label = np.zeros((n, n), np.uint8)
        tissue = np.full((n, n), look["tissue"], np.float32)
        # Distractors that carry no label: lungs, liver, a great vessel, fat under the skin.
        for side in (-1, 1):
            ly, lx = body_c[0] - 4, body_c[1] + side * body_a * 0.55 * lung_side
            lung = ((yy - ly) / (body_b * 0.7)) ** 2 + ((xx - lx) / (body_a * 0.3)) ** 2 < 1
            tissue[lung] = look["lung"]
        if t > 0.4:
            liver = ((yy - body_c[0] - body_b * 0.45) / (body_b * 0.45)) ** 2 + ((xx - body_c[1] + 6) / (body_a * 0.6)) ** 2 < 1
            tissue[liver] = look["liver"]
        if t < 0.35:
            vy, vx = cy - (r + w + 6) * np.sin(theta + 2.2), cx - (r + w + 6) * np.cos(theta + 2.2)
            tissue[(yy - vy) ** 2 + (xx - vx) ** 2 < rng.uniform(3, 5) ** 2] = look["blood"]
        tissue[(body > 0.82) & (body <= 1)] = look["fat"]
        tissue[body > 1] = 0.0

        if t < 0.8:  # the RV vanishes towards the apex
            rs = (r + w) * (1 - 0.5 * t)
            ru = (u - (r + w) * 0.9) / (rs * rv_short)
            rv = (ru ** 2 + (v / (rs * rv_long)) ** 2 <= 1) & (rho > r + w) & (u > 0)
            label[rv] = 1
            tissue[rv] = look["blood"]
        label[myo_out] = 2
        label[lv] = 3
        tissue[myo_out] = look["myo"]
        tissue[lv] = look["blood"]
        # Papillary muscles: muscle-bright spots labeled LV, so "intensity = class" never quite works.
        for k in range(int(rng.integers(0, 3))):
            a = th + np.pi + rng.uniform(-1, 1)
            py, px = cy + 0.6 * r * np.sin(a), cx + 0.6 * r * np.cos(a)
            tissue[((yy - py) ** 2 + (xx - px) ** 2 < (0.22 * r) ** 2) & lv] = look["myo"]

        img = gaussian_filter(tissue, look["blur"]) * np.exp(bias)
        noise = rng.normal(0, look["noise"], (2, n, n))
        img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)  # magnitude images have Rician noise
        images.append(img)
        labels.append(label)
    vol = np.stack(images).astype(np.float32)
    vol = (vol - vol.min()) / (vol.max() - vol.min())  # per-volume min-max, like the ACDC h5 files
    vol = vol ** look["gamma"]
    spacing = (float(rng.choice([8.0, 10.0])), *(2 * [float(np.round(rng.uniform(1.3, 1.8), 4))]))
    lab = np.stack(labels)
    for a in (vol, lab):
        a.setflags(write=False)  # shared through the cache: callers get copies (see toy.py)
    return vol, lab, spacing, look["look"]
