"""The two containers every dataset reader returns, so the trainer never sees formats."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Case:
    """One evaluation unit: an ACDC volume or one ISIC image stored with Z=1 (2D data, scored
    slice by slice), or an LA volume (3D data, scored with a sliding window)."""

    id: str
    image: np.ndarray  # 2D data: (Z, C, H, W) float32 in [0, 1]; 3D data: (C, X, Y, Z) float32
    label: np.ndarray  # 2D data: (Z, H, W); 3D data: (X, Y, Z); uint8 class ids
    spacing: tuple[float, float, float] | None  # (z, y, x) mm; None if unknown


@dataclass
class SegData:
    """Everything one run needs: resized training arrays plus native-resolution cases.

    Training slices of labeled and unlabeled cases share one array so that the official
    rule "unlabeled = every training slice that is not labeled" is a pure index split.
    """

    name: str
    num_classes: int
    in_channels: int
    class_names: list[str]  # background first
    # 2D: (N, C, S, S) float16 in [0, 1] (may be a read-only memmap) and (N, S, S) uint8.
    # 3D: lists of N volumes (C, X, Y, Z) float32 and (X, Y, Z) uint8, sizes differing.
    train_images: np.ndarray | list
    train_labels: np.ndarray | list
    labeled_idx: np.ndarray  # int64 indices into train_*
    unlabeled_idx: np.ndarray  # int64, every other training slice
    val_cases: list[Case]
    test_cases: list[Case]
    split: dict  # JSON-serialisable; feed it back through data.split_file to reproduce the run
    spatial_dims: int = 2  # 3: volumes trained on patches and scored with a sliding window
    downsample: int = 1  # 3D: training volumes were shrunk by this factor; cases are native

    def __post_init__(self):
        # Cheap invariants: a broken reader should fail here, not 2 hours into training.
        n = len(self.train_images)
        if len(self.train_labels) != n:
            raise ValueError(f"{self.name}: {n} training images but {len(self.train_labels)} labels")
        lab, unl = np.asarray(self.labeled_idx), np.asarray(self.unlabeled_idx)
        if np.intersect1d(lab, unl).size:
            raise ValueError(f"{self.name}: labeled and unlabeled training slices overlap")
        if len(lab) == 0:
            raise ValueError(f"{self.name}: no labeled training slices; check data.labeled and the split")
        if len(class_names := self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: {len(class_names)} class names for {self.num_classes} classes")
