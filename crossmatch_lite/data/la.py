"""Left Atrium (2018 Atrial Segmentation Challenge) in the UA-MT preprocessing, as the
official CrossMatch LA code reads it; `python -m data_download la --dest data/LA` fetches it.

    <root>/<ID>/mri_norm2.h5   image float32 (z-scored), label uint8 {0, 1}; (X, Y, Z) ~ 183x140x88
    <root>/train.list (80)     <root>/test.list (20)     <root>/train_{4,8,16}_label.list

The split follows the official lists: test is test.list, the labeled scans are
train_{n}_label.list for n in 4, 8, 16 (other counts: drawn by seed). The official code has
no val split and picks its checkpoint on the test scans; here `data.val_count` training
scans (8 by default) are held out as val instead, drawn once with a fixed seed from the
scans that no official labeled list uses (h5volumes.py, shared with Pancreas-CT). Those
scans are then not in the unlabeled pool (64 instead of the official 72 with 8 labels);
docs/3d.md says so.

The voxels are 0.625 mm along every axis (the challenge's acquisition resolution, which the
UA-MT crop keeps), so distances are given in voxels, as the paper reports them, and in mm.
"""
from __future__ import annotations

from pathlib import Path

from . import h5volumes as H5
from .base import Case, SegData

SPACING = (0.625, 0.625, 0.625)
CLASS_NAMES = ("background", "left atrium")
OFFICIAL_LABELED = (4, 8, 16)


def _official(root: Path, rest: list[str], n: int):
    if n not in OFFICIAL_LABELED:
        return None
    return H5.read_list(LAYOUT, root, f"train_{n}_label.list"), f"train_{n}_label.list"


LAYOUT = H5.H5Volumes(
    "la", "{cid}/mri_norm2.h5", SPACING, CLASS_NAMES, fix="re-run python -m data_download la --dest {root}",
    reserved=lambda root, train: H5.read_list(LAYOUT, root, f"train_{max(OFFICIAL_LABELED)}_label.list"),
    published=_official)


def read_case(root: Path, cid: str) -> Case:
    return H5.read_case(LAYOUT, root, cid)


def la_split(root: Path, labeled: float, val_count: int, seed: int) -> dict:
    return H5.make_split(LAYOUT, root, labeled, val_count, seed)


def load_la(cfg, seed: int) -> SegData:
    return H5.load(LAYOUT, cfg, seed)
