"""Left Atrium (2018 Atrial Segmentation Challenge) in the UA-MT preprocessing, as the
official CrossMatch LA code reads it; `python -m data_download la --dest data/LA` fetches it.

    <root>/<ID>/mri_norm2.h5   image float32 (z-scored), label uint8 {0, 1}; (X, Y, Z) ~ 183x140x88
    <root>/train.list (80)     <root>/test.list (20)     <root>/train_{4,8,16}_label.list

The split follows the official lists: test is test.list, the labeled scans are
train_{n}_label.list for n in 4, 8, 16. The official code has no val split and picks its
checkpoint on the test scans; here `data.val_count` training scans (8 by default) are held
out as val instead, drawn once with a fixed seed from the scans that no official labeled
list uses, so every run and every labeled count chooses its checkpoint on the same val
scans and never looks at test. Those scans are then not in the unlabeled pool (64 instead
of the official 72 with 8 labels); docs/3d.md says so.

The voxels are 0.625 mm along every axis (the challenge's acquisition resolution, which the
UA-MT crop keeps), so distances are given in voxels, as the paper reports them, and in mm.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import splitting as S
from .base import Case, SegData
from .volumes import training_arrays

SPACING = (0.625, 0.625, 0.625)
CLASS_NAMES = ("background", "left atrium")
OFFICIAL_LABELED = (4, 8, 16)
VAL_SEED = 0


def _read_list(root: Path, name: str) -> list[str]:
    path = root / name
    if not path.is_file():
        raise S.DataError(f"{path} is missing: {root} is not a prepared LA folder. "
                          f"Run: python -m data_download la --dest {root}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def read_case(root: Path, cid: str) -> Case:
    import h5py

    path = root / cid / "mri_norm2.h5"
    if not path.is_file():
        raise S.DataError(f"{path} is missing; re-run python -m data_download la --dest {root} to fetch it")
    with h5py.File(path, "r") as f:
        image, label = f["image"][:].astype(np.float32), f["label"][:].astype(np.uint8)
    # A NaN would be trained on and scored without a word; the published volumes hold none.
    S.require_finite(image, f"{path}: image", f"the file is damaged: delete it and re-run "
                     f"python -m data_download la --dest {root}")
    return Case(cid, image[None], label, SPACING)


def la_split(root: Path, labeled: float, val_count: int, seed: int) -> dict:
    train, test = _read_list(root, "train.list"), _read_list(root, "test.list")
    reserved = set(_read_list(root, f"train_{max(OFFICIAL_LABELED)}_label.list"))
    pool = sorted(set(train) - reserved)
    if val_count >= len(pool):
        raise S.DataError(f"data.val_count={val_count}, but only {len(pool)} LA training scans are outside "
                          "every official labeled list; use fewer")
    val = S.seeded_labeled(pool, val_count, VAL_SEED)
    rest = [c for c in train if c not in set(val)]
    n = S.labeled_count(labeled, len(rest), "la", fraction_ok=False)
    if n in OFFICIAL_LABELED:
        lab = _read_list(root, f"train_{n}_label.list")
        source = f"train_{n}_label.list"
    else:
        lab = rest if n >= len(rest) else S.seeded_labeled(rest, n, seed)
        source = "all training scans but val" if n >= len(rest) else f"seed {seed}"
    return S.make_split("la", lab, rest, val, test, seed=seed, labeled_request=labeled,
                        labeled_source=source)


def load_la(cfg, seed: int) -> SegData:
    root = Path(cfg.root)
    if cfg.split_file:
        split = S.read_split_file(cfg.split_file, "la")
        S.check_split(split)
    else:
        split = la_split(root, cfg.labeled, cfg.val_count, seed)
    train_ids = sorted(split["labeled"] + split["unlabeled"])
    train = [read_case(root, c) for c in train_ids]
    images, labels = training_arrays(train, cfg.downsample)
    lab_idx, unl_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData("la", 2, 1, list(CLASS_NAMES), images, labels, lab_idx, unl_idx,
                   [read_case(root, c) for c in split["val"]], [read_case(root, c) for c in split["test"]],
                   split, spatial_dims=3, downsample=cfg.downsample)
