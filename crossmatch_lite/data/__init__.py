"""Data layer: every dataset becomes one SegData (resized training arrays + native cases).

    from crossmatch_lite.data import load_data
    data = load_data(cfg.data, seed)   # cfg.data.name: toy_acdc | toy_isic | acdc | isic2018 | folder | toy_la | la

`seed` only chooses labeled subsets that are not fixed by the dataset (toy data, ISIC
fractions, ACDC counts other than 1/3/7); the data themselves never depend on it.
`data.split` is JSON-serialisable: save it with a run and pass its file back as
data.split_file to rebuild exactly the same split.
"""
from __future__ import annotations

from .base import Case, SegData
from .splitting import DataError

__all__ = ["Case", "DataError", "SegData", "load_data", "DATASETS"]

DATASETS = ("toy_acdc", "toy_isic", "acdc", "isic2018", "folder", "toy_la", "la")


def load_data(cfg, seed: int) -> SegData:
    # Imports are local so that, e.g., the toy data work without h5py being importable.
    name = cfg.name
    if name == "toy_acdc":
        from .toy import load_toy_acdc
        return load_toy_acdc(cfg, seed)
    if name == "toy_isic":
        from .toy import load_toy_isic
        return load_toy_isic(cfg, seed)
    if name == "acdc":
        from .acdc import load_acdc
        return load_acdc(cfg, seed)
    if name == "isic2018":
        from .isic import load_isic
        return load_isic(cfg, seed)
    if name == "folder":
        from .folder import load_folder
        return load_folder(cfg, seed)
    if name == "toy_la":
        from .toy_la import load_toy_la
        return load_toy_la(cfg, seed)
    if name == "la":
        from .la import load_la
        return load_la(cfg, seed)
    raise DataError(f"unknown data.name '{name}'; choose one of {', '.join(DATASETS)}")
