"""toy_la: synthetic 3D "left atrium" volumes, small enough to train a narrow VNet in CI.

Each volume is z-scored noise with a smooth intensity drift, a bright ellipsoid (the
labelled structure, class 1) of random size, position and orientation-free radii, and a
bright ball elsewhere that is *not* labelled, so that intensity alone does not segment it.
Volumes differ in size, as LA scans do. Fixed data seed: the run seed only chooses which
training volumes are labeled.
"""
from __future__ import annotations

import numpy as np

from . import splitting as S
from .base import Case, SegData
from .volumes import training_arrays

DATA_SEED = 2018
COUNTS = {"train": 24, "val": 4, "test": 6}
CLASS_NAMES = ("background", "atrium")
SPACING = (1.0, 1.0, 1.0)


def volume(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED + i)
    shape = (int(rng.integers(40, 49)), int(rng.integers(40, 49)), int(rng.integers(20, 29)))
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    centre = np.array([rng.uniform(0.35, 0.65) * s for s in shape], dtype=np.float32)
    radii = np.array([rng.uniform(0.15, 0.25) * shape[0], rng.uniform(0.15, 0.25) * shape[1],
                      rng.uniform(0.2, 0.3) * shape[2]], dtype=np.float32)
    inside = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1.0
    decoy_c = np.array([(c + s / 2) % s for c, s in zip(centre, shape)], dtype=np.float32)
    decoy = (((grid - decoy_c[:, None, None, None]) / (0.6 * radii.min())) ** 2).sum(0) <= 1.0
    drift = 0.3 * np.sin(grid[0] / shape[0] * np.pi * rng.uniform(0.5, 1.5))
    image = rng.normal(0.0, 0.6, shape).astype(np.float32) + drift + 1.6 * inside + 1.2 * decoy
    image = (image - image.mean()) / image.std()
    return image[None].astype(np.float32), inside.astype(np.uint8)


def load_toy_la(cfg, seed: int) -> SegData:
    ids, k = {}, 0
    for part, n in COUNTS.items():
        ids[part] = [f"v{i:03d}" for i in range(k, k + n)]
        k += n
    if getattr(cfg, "split_file", None):
        split = S.read_split_file(cfg.split_file, "toy_la")
        S.check_split(split)
    else:
        n = S.labeled_count(cfg.labeled, len(ids["train"]), "toy_la", fraction_ok=False)
        split = S.make_split("toy_la", S.seeded_labeled(ids["train"], n, seed), ids["train"], ids["val"],
                             ids["test"], seed=seed, labeled_request=cfg.labeled)

    def case(cid: str) -> Case:
        return Case(cid, *volume(int(cid[1:])), SPACING)

    train_ids = sorted(split["labeled"] + split["unlabeled"])
    images, labels = training_arrays([case(c) for c in train_ids], cfg.downsample)
    lab_idx, unl_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData("toy_la", 2, 1, list(CLASS_NAMES), images, labels, lab_idx, unl_idx,
                   [case(c) for c in split["val"]], [case(c) for c in split["test"]], split,
                   spatial_dims=3, downsample=cfg.downsample)
