"""Pancreas-CT (NIH, on TCIA: 82 contrast-enhanced abdominal CT scans) in the MC-Net
preprocessing that the semi-supervised pancreas literature trains on (ycwu1997/MC-Net,
`data/Pancreas/`): no downloader here, the folder is prepared as docs/data.md describes.

    <root>/Pancreas_h5/<case>_norm.h5   image float32 (z-scored), label {0, 1} (stored as float32);
                                       (X, Y, Z), cases image0001 ... image0082
    <root>/train.list (62)   <root>/test.list (20)   one case name per line

MC-Net's preprocessing resamples every scan to 1 mm voxels, windows it to [-125, 275] HU,
crops around the pancreas with a margin and z-scores it; distances are therefore in mm
and voxels alike. The labeled cases are the first n of train.list, as MC-Net's training
script takes them (6 = 10 %, 12 = 20 %). Val is held out as on LA (h5volumes.py): drawn
once with a fixed seed from the training cases after the first 12.
"""
from __future__ import annotations

from pathlib import Path

from . import h5volumes as H5
from .base import Case, SegData

SPACING = (1.0, 1.0, 1.0)
CLASS_NAMES = ("background", "pancreas")
LARGEST_LABELED = 12  # 20 % of 62, the largest labeled count the literature reports


def _first_n(root: Path, rest: list[str], n: int) -> tuple[list[str], str]:
    # Val lies after the first 12, so up to 12 these are exactly the first n of train.list.
    return rest[:n], f"the first {n} of train.list" + (" outside val" if n > LARGEST_LABELED else "")


LAYOUT = H5.H5Volumes(
    "pancreas", "Pancreas_h5/{cid}_norm.h5", SPACING, CLASS_NAMES,
    fix="prepare it in MC-Net's layout (docs/data.md, 'Pancreas-CT and FIVES')",
    reserved=lambda root, train: train[:LARGEST_LABELED],
    published=_first_n)


def read_case(root: Path, cid: str) -> Case:
    return H5.read_case(LAYOUT, root, cid)


def pancreas_split(root: Path, labeled: float, val_count: int, seed: int) -> dict:
    return H5.make_split(LAYOUT, root, labeled, val_count, seed)


def load_pancreas(cfg, seed: int) -> SegData:
    return H5.load(LAYOUT, cfg, seed)
