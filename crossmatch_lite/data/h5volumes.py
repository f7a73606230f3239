"""The published preprocessed 3D benchmarks, read one way: LA in UA-MT's preprocessing
(`la.py`) and Pancreas-CT in MC-Net's (`pancreas.py`).

Both publish one HDF5 file per case holding `image` (X, Y, Z) float (z-scored) and
`label` (X, Y, Z) in {0, 1}, plus `train.list` / `test.list` naming the cases. What
differs (where a case's file lies, the voxel size, which training cases the literature
labels) is an `H5Volumes`; reading a case, the split and the SegData are shared here.

The split: test is test.list. The published code has no val split (it picks checkpoints
on the test cases), so `data.val_count` training cases are held out as val instead,
drawn once with a fixed seed from the training cases that no labeled list of the
literature uses: every run and every labeled count then chooses its checkpoint on the
same val cases and never looks at test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import splitting as S
from .base import Case, SegData
from .volumes import training_arrays

VAL_SEED = 0  # val does not depend on the run seed


@dataclass(frozen=True)
class H5Volumes:
    name: str  # data.name
    case_file: str  # a case's file below data.root; "{cid}" stands for the case id
    spacing: tuple[float, float, float]  # mm per voxel along (x, y, z)
    class_names: tuple[str, str]
    fix: str  # how to (re)create the folder, said in every error; "{root}" stands for data.root
    # The training cases of the largest labeled list the literature uses: val never takes them.
    reserved: Callable[[Path, list[str]], list[str]]
    # (labeled cases, where they come from) the literature uses for n labeled, given the
    # training cases in train.list order minus val; None: none published, draw them by seed.
    published: Callable[[Path, list[str], int], Optional[tuple[list[str], str]]]


def read_list(layout: H5Volumes, root: Path, name: str) -> list[str]:
    path = root / name
    if not path.is_file():
        raise S.DataError(f"{path} is missing: {root} is not a prepared {layout.name} folder; "
                          f"{layout.fix.format(root=root)}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def read_case(layout: H5Volumes, root: Path, cid: str) -> Case:
    path = root / layout.case_file.format(cid=cid)
    fix = layout.fix.format(root=root)
    if not path.is_file():
        raise S.DataError(f"{path} is missing; {fix}")
    image, raw = _arrays(path, fix)
    # A NaN would be trained on and scored without a word; the published volumes hold none.
    S.require_finite(image, f"{path}: image", f"the file is damaged: delete it, then {fix}")
    label = raw.astype(np.uint8)
    # MC-Net's pancreas files store the label as float32 0.0/1.0, so the dtype proves
    # nothing; a value other than 0 and 1 (a 255 mask, a multi-organ label) would be
    # trained on as a class the network does not have.
    if image.shape != raw.shape or raw.min() < 0 or raw.max() > 1 or not np.array_equal(label, raw):
        raise S.DataError(f"{path}: expected an image and a label of one shape with label values 0 and 1, got "
                          f"image {image.shape}, label {raw.shape} with values {np.unique(raw)[:6].tolist()}; {fix}")
    return Case(cid, image[None], label, layout.spacing)


def _arrays(path: Path, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """(image as float32, label as stored) of one case file, both (X, Y, Z); a file that is
    empty, truncated, not HDF5 or laid out otherwise is a DataError naming it (as a bare
    OSError the command line would blame the run folder)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("image", "label") if not isinstance(f.get(k), h5py.Dataset)]
            if missing:
                raise S.DataError(f"{path} has no {' or '.join(f'`{k}` array' for k in missing)} (it holds "
                                  f"{sorted(f.keys())[:6]}); {fix}")
            image, raw = f["image"][()], f["label"][()]
    except OSError as e:
        size = path.stat().st_size
        why = "it is empty (0 bytes)" if size == 0 else f"{str(e).splitlines()[0][:120]}"
        raise S.DataError(f"{path} cannot be read as HDF5 ({why}): it is truncated or damaged; {fix}") from None
    if image.ndim != 3 or not np.issubdtype(image.dtype, np.number) or min(image.shape, default=0) == 0:
        raise S.DataError(f"{path}: `image` is {image.dtype} of shape {image.shape}, but a case is a 3D (X, Y, Z) "
                          f"array of numbers; {fix}")
    return image.astype(np.float32), raw


def make_split(layout: H5Volumes, root: Path, labeled: float, val_count: int, seed: int) -> dict:
    train, test = read_list(layout, root, "train.list"), read_list(layout, root, "test.list")
    pool = sorted(set(train) - set(layout.reserved(root, train)))
    if val_count >= len(pool):
        raise S.DataError(f"data.val_count={val_count}, but only {len(pool)} {layout.name} training scans are outside "
                          "every published labeled list; use fewer")
    val = set(S.seeded_labeled(pool, val_count, VAL_SEED))
    rest = [c for c in train if c not in val]  # train.list order: MC-Net labels its first n
    n = S.labeled_count(labeled, len(rest), layout.name, fraction_ok=False)
    published = layout.published(root, rest, n)
    if published is not None:
        lab, source = published
    elif n >= len(rest):
        lab, source = rest, "all training scans but val"
    else:
        lab, source = S.seeded_labeled(rest, n, seed), f"seed {seed}"
    return S.make_split(layout.name, lab, rest, sorted(val), test, seed=seed, labeled_request=labeled,
                        labeled_source=source)


def load(layout: H5Volumes, cfg, seed: int) -> SegData:
    root = Path(cfg.root)
    if cfg.split_file:
        split = S.read_split_file(cfg.split_file, layout.name)
        S.check_split(split)
    else:
        split = make_split(layout, root, cfg.labeled, cfg.val_count, seed)
    train_ids = sorted(split["labeled"] + split["unlabeled"])
    images, labels = training_arrays([read_case(layout, root, c) for c in train_ids], cfg.downsample)
    lab_idx, unl_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData(layout.name, 2, 1, list(layout.class_names), images, labels, lab_idx, unl_idx,
                   [read_case(layout, root, c) for c in split["val"]],
                   [read_case(layout, root, c) for c in split["test"]],
                   split, spatial_dims=3, downsample=cfg.downsample)
