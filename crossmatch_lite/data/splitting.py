"""Split dicts: the default ones, the ones read back from a split file, and their checks.

A split dict names *groups* (ACDC/toy patients, ISIC images) in four lists, "labeled",
"unlabeled", "val" and "test", plus free-form extras that are carried through untouched.
Feeding a run's saved split back through data.split_file must rebuild identical
training arrays and indices, so every list is kept sorted and every derived order
(training slices, cases) is a function of the lists alone.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

LISTS = ("labeled", "unlabeled", "val", "test")


class DataError(ValueError):
    """Data or a split that cannot be used as asked; the message says what to change."""


def require_finite(values: np.ndarray, source: str, fix: str) -> None:
    """Refuse NaN/inf in data read from a file: one such value turns a min-max scaled volume
    into zeros or NaN, and is trained on or scored without a word otherwise."""
    if not np.issubdtype(values.dtype, np.inexact):
        return  # integer data cannot hold them
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise DataError(f"{source} holds {bad} non-finite value(s) (NaN or inf) among {values.size}; {fix}")

_PACKAGE_SPLITS = Path(__file__).with_name("splits")


def read_id_list(name: str) -> list[str]:
    """A split list shipped with the package (crossmatch_lite/data/splits/<name>.txt)."""
    path = _PACKAGE_SPLITS / f"{name}.txt"
    return [ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()]


def labeled_count(value: float, pool_size: int, dataset: str, fraction_ok: bool) -> int:
    """data.labeled as a number of groups: a count, or (where allowed) a fraction < 1."""
    if value <= 0:
        raise DataError(f"{dataset}: data.labeled must be positive, got {value}")
    if value < 1:
        if not fraction_ok:
            raise DataError(f"{dataset}: data.labeled counts patients (e.g. 1, 3, 7), got {value}")
        n = max(1, int(round(value * pool_size)))
    else:
        if value != int(value):
            raise DataError(f"{dataset}: data.labeled must be a whole count or a fraction < 1, got {value}")
        n = int(value)
    if n > pool_size:
        raise DataError(f"{dataset}: data.labeled={value:g} asks for {n} labeled but the training pool has "
                        f"{pool_size}; use at most {pool_size} (all of them: a fully supervised run)")
    return n


def seeded_labeled(pool: list[str], n: int, seed: int) -> list[str]:
    """The first n of a seeded permutation, so labeled sets of one seed are nested."""
    order = np.random.default_rng(seed).permutation(len(pool))
    return sorted(pool[i] for i in order[:n])


def make_split(dataset: str, labeled: list[str], train: list[str], val: list[str], test: list[str],
               **extras) -> dict:
    lab = set(labeled)
    split = {"dataset": dataset,
             "labeled": sorted(lab),
             "unlabeled": sorted(set(train) - lab),
             "val": sorted(val),
             "test": sorted(test)}
    split.update(extras)
    check_split(split)
    return split


def check_split(split: dict) -> None:
    """Refuse splits that would silently leak evaluation data into training."""
    missing = [k for k in LISTS if not isinstance(split.get(k), list)]
    if missing:
        raise DataError(f"split is missing the list(s) {missing}; a split needs {list(LISTS)}")
    sets = {k: set(split[k]) for k in LISTS}
    for i, a in enumerate(LISTS):
        for b in LISTS[i + 1:]:
            both = sets[a] & sets[b]
            if both:
                raise DataError(f"split lists '{a}' and '{b}' share {sorted(both)[:5]}"
                                 f"{' ...' if len(both) > 5 else ''}: a group may be in one list only")
    if not split["labeled"]:
        raise DataError("split has an empty 'labeled' list: nothing to train on")


def read_split_file(path: str | Path, dataset: str) -> dict:
    """A split saved by an earlier run (or written by hand) for this dataset."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.split_file {path} does not exist")
    try:
        split = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"data.split_file {path} is not valid JSON: {e}") from None
    if not isinstance(split, dict):
        raise DataError(f"data.split_file {path} must hold a JSON object with lists {list(LISTS)}")
    if isinstance(split.get("split"), dict):  # tolerate a file that wraps the split
        split = split["split"]
    if split.get("dataset", dataset) != dataset:
        raise DataError(f"data.split_file {path} is a split of '{split['dataset']}', not of '{dataset}'")
    for k in LISTS:
        split[k] = sorted(map(str, split.get(k, [])))
    split["dataset"] = dataset
    check_split(split)
    return split


def keep_present(split: dict, present: set[str], dataset: str, where: str) -> dict:
    """Drop groups absent on disk, with one warning that names them all."""
    gone = {k: [g for g in split[k] if g not in present] for k in LISTS}
    if any(gone.values()):
        lines = [f"  {k}: {len(v)} missing ({_short(v)})" for k, v in gone.items() if v]
        warnings.warn(f"{dataset}: some split entries are not in {where}; using those present.\n"
                      + "\n".join(lines), stacklevel=3)
        split = dict(split)
        for k in LISTS:
            split[k] = [g for g in split[k] if g in present]
    return split


def slice_indices(slice_groups: list[str], labeled: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labeled = slices of labeled groups; unlabeled = every other training slice."""
    lab = set(labeled)
    is_lab = np.fromiter((g in lab for g in slice_groups), dtype=bool, count=len(slice_groups))
    return np.flatnonzero(is_lab).astype(np.int64), np.flatnonzero(~is_lab).astype(np.int64)


def _short(ids: list[str], k: int = 8) -> str:
    return ", ".join(ids[:k]) + (f", ... (+{len(ids) - k})" if len(ids) > k else "")
