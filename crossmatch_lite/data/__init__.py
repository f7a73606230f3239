"""Data layer: every dataset becomes one SegData (resized training arrays + native cases).

    from crossmatch_lite.data import load_data
    data = load_data(cfg.data, seed)   # cfg.data.name: any key of config.DATASET_DIMS

`seed` only chooses labeled subsets that are not fixed by the dataset (toy data, ISIC and
FIVES, ACDC counts other than 1/3/7, LA counts other than 4/8/16); the data themselves never
depend on it.
`data.split` is JSON-serialisable: save it with a run and pass its file back as
data.split_file to rebuild exactly the same split.
"""
from __future__ import annotations

import importlib

from .base import Case, SegData
from .splitting import DataError

from ..config import DATASET_DIMS

__all__ = ["Case", "DataError", "SegData", "load_data", "DATASETS"]

DATASETS = tuple(DATASET_DIMS)
# name -> (module, loader). Imported on use, so that, e.g., the toy data work without
# h5py being importable.
LOADERS = {"toy_acdc": ("toy", "load_toy_acdc"), "toy_isic": ("toy", "load_toy_isic"), "acdc": ("acdc", "load_acdc"),
           "isic2018": ("isic", "load_isic"), "folder": ("folder", "load_folder"),
           "toy_la": ("toy_la", "load_toy_la"), "la": ("la", "load_la"),
           "pancreas": ("pancreas", "load_pancreas"),
           "fives": ("fives", "load_fives")}


def load_data(cfg, seed: int) -> SegData:
    if cfg.name not in LOADERS:
        raise DataError(f"unknown data.name '{cfg.name}'; choose one of {', '.join(DATASETS)}")
    module, loader = LOADERS[cfg.name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), loader)(cfg, seed)
