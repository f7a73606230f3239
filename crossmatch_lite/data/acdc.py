"""ACDC in the SSL4MIS HDF5 layout (what UniMatch and CrossMatch train on).

    <root>/data/patientXXX_frame01.h5   ED volume: image float64 (z, y, x) in [0, 1], label uint8
    <root>/data/patientXXX_frame02.h5   ES volume
    <root>/data/slices/...               the same slices one per file; not needed, so not read

Splits are by patient and both frames of a patient go together. Training slices are read
from the volume files (identical data, 140 files instead of 1312).
"""
from __future__ import annotations

import re
import warnings
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np

from . import splitting as S
from .base import Case, SegData
from .cache import file_signature, load_or_build
from .resize import zoom_nearest

CLASS_NAMES = ["background", "RV", "Myo", "LV"]
_CASE_RE = re.compile(r"^(patient\d{3})_frame0[12]$")
_SPACING_TSV = Path(__file__).with_name("acdc_spacing.tsv")


def download_hint(root: Path) -> str:
    return f"python -m data_download acdc --dest {root}"


def find_cases(root: Path) -> dict[str, Path]:
    """case id (patientXXX_frame0N) -> volume file, for every volume on disk."""
    data_dir = root / "data"
    found = {p.stem: p for p in data_dir.glob("patient*_frame0*.h5") if _CASE_RE.match(p.stem)}
    if not found:
        raise FileNotFoundError(
            f"no ACDC volumes (patientXXX_frame01.h5 / _frame02.h5) found in {data_dir}. "
            f"Download and convert the data with `{download_hint(root)}`, "
            f"or set data.root to the folder that contains data/patientXXX_frame01.h5.")
    return dict(sorted(found.items()))


def patient_of(case_id: str) -> str:
    return case_id[:10]


def expand(ids: list[str], cases: dict[str, Path]) -> list[str]:
    """Split entries are patients (both frames) or single volumes ("patient001_frame01")."""
    out = []
    for g in ids:
        out += [c for c in cases if patient_of(c) == g] if g not in cases else [g]
    return sorted(set(out))


def default_split(labeled: float, seed: int) -> dict:
    train = S.read_id_list("acdc_train")
    n = S.labeled_count(labeled, len(train), "acdc", fraction_ok=False)
    if n in (1, 3, 7):
        lab = S.read_id_list(f"acdc_labeled_{n}")  # the official lists, whatever the seed
    else:
        lab = S.seeded_labeled(train, n, seed)
    return S.make_split("acdc", lab, train, S.read_id_list("acdc_val"), S.read_id_list("acdc_test"),
                        seed=seed, labeled_request=n)


def resolve_split(cfg, seed: int, cases: dict[str, Path], root: Path) -> dict:
    present = set(cases) | {patient_of(c) for c in cases}
    from_file = getattr(cfg, "split_file", None)
    split = S.read_split_file(from_file, "acdc") if from_file else default_split(cfg.labeled, seed)
    split = S.keep_present(split, present, "acdc", f"{root / 'data'}")
    if not split["labeled"]:
        if from_file:
            raise FileNotFoundError(f"none of the labeled entries of {from_file} is in {root / 'data'}")
        # Partial data (e.g. a few downloaded patients): keep the requested count, drawn from what is here.
        pool = split["labeled"] + split["unlabeled"]
        n = min(split["labeled_request"], max(1, len(pool) - 1))
        if not pool:
            raise FileNotFoundError(f"none of the 70 ACDC training patients is in {root / 'data'}; "
                                    f"get them with `{download_hint(root)}`")
        lab = S.seeded_labeled(pool, n, seed)
        warnings.warn(f"acdc: the official labeled patients are missing; using {lab} instead", stacklevel=3)
        split = {**split, "labeled": lab, "unlabeled": sorted(set(pool) - set(lab))}
    S.check_split(split)
    return split


@lru_cache(maxsize=1)
def spacing_table() -> dict[str, tuple[float, float, float]]:
    rows = (ln.split("\t") for ln in _SPACING_TSV.read_text().splitlines()[1:] if ln.strip())
    return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows}


def read_volume(path: Path) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    # h5py's messages for a truncated or corrupt file do not name it: add the name and the fix.
    try:
        with h5py.File(path, "r") as f:
            image = f["image"][()]
            label = f["label"][()]
            spacing = tuple(float(v) for v in f.attrs["spacing"]) if "spacing" in f.attrs else None
    except (OSError, KeyError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise S.DataError(f"{path} cannot be read ({reason}): the file is truncated or corrupt. Delete it and "
                          f"re-run `{download_hint(path.parent.parent)}` to fetch it again.") from None
    if image.ndim != 3 or image.shape != label.shape:
        raise S.DataError(f"{path}: expected image and label of one (z, y, x) shape, "
                          f"got {image.shape} and {label.shape}")
    # A NaN would be trained on and scored without a word; the converter never writes one.
    redo = f"the file is damaged: delete it and re-run `{download_hint(path.parent.parent)}`"
    S.require_finite(image, f"{path}: image", redo)
    S.require_finite(label, f"{path}: label", redo)
    if label.max(initial=0) >= len(CLASS_NAMES):
        raise S.DataError(f"{path}: label has class {label.max()}, ACDC has {len(CLASS_NAMES)} classes")
    return image, label.astype(np.uint8), spacing


def read_case(case_id: str, path: Path) -> Case:
    image, label, spacing = read_volume(path)
    return Case(id=case_id, image=image.astype(np.float32)[:, None], label=label,
                spacing=spacing or spacing_table().get(case_id))


def build_train(case_ids: list[str], cases: dict[str, Path], size: int):
    """Every slice of the given volumes resized to size x size, nearest, like the official loader."""
    imgs, labs, counts = [], [], []
    for cid in case_ids:
        image, label, _ = read_volume(cases[cid])
        imgs += [zoom_nearest(s.astype(np.float32), size) for s in image]
        labs += [zoom_nearest(s, size) for s in label]
        counts.append(len(image))
    images = np.stack(imgs)[:, None].astype(np.float16)
    labels = np.stack(labs).astype(np.uint8)
    return images, labels, {"cases": case_ids, "slices": counts}


def load_acdc(cfg, seed: int) -> SegData:
    root = Path(cfg.root).expanduser()
    cases = find_cases(root)
    split = resolve_split(cfg, seed, cases, root)
    train_cases = expand(split["labeled"] + split["unlabeled"], cases)
    size = int(cfg.size)

    if getattr(cfg, "cache", False):
        key = {"dataset": "acdc", "sources": [file_signature(cases[c]) for c in train_cases]}
        images, labels, info = load_or_build(root / "cache", size, key,
                                             lambda: build_train(train_cases, cases, size))
    else:
        images, labels, info = build_train(train_cases, cases, size)

    slice_groups = [c for c, n in zip(info["cases"], info["slices"]) for _ in range(n)]
    lab_cases = expand(split["labeled"], cases)
    labeled_idx, unlabeled_idx = S.slice_indices(slice_groups, lab_cases)
    return SegData(
        name="acdc", num_classes=len(CLASS_NAMES), in_channels=1, class_names=list(CLASS_NAMES),
        train_images=images, train_labels=labels,
        labeled_idx=labeled_idx, unlabeled_idx=unlabeled_idx,
        val_cases=[read_case(c, cases[c]) for c in expand(split["val"], cases)],
        test_cases=[read_case(c, cases[c]) for c in expand(split["test"], cases)],
        split=split)
