"""Shared by the 3D readers: volumes as Cases, and shrinking them for cheaper training."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import Case


def shrink(image: np.ndarray, label: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) image and (X, Y, Z) label made `factor` times smaller along each axis:
    the image by averaging (area), the label by majority of each class's share."""
    if factor == 1:
        return image, label
    size = [max(1, round(s / factor)) for s in label.shape]
    img = F.interpolate(torch.from_numpy(image)[None].float(), size=size, mode="area")[0]
    k = int(label.max()) + 1
    onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)), k).movedim(-1, 0)[None].float()
    lab = F.interpolate(onehot, size=size, mode="area")[0].argmax(0)
    return img.numpy().astype(np.float32), lab.numpy().astype(np.uint8)


def training_arrays(cases: list[Case], factor: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = [shrink(c.image, c.label, factor) for c in cases]
    return [p[0] for p in pairs], [p[1] for p in pairs]
