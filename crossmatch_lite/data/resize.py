"""Resizing to the square training size S.

ACDC follows the official CrossMatch/UniMatch code, which resizes image and label alike
with scipy's zoom(order=0); matching it keeps our numbers comparable. RGB photographs
(ISIC) look wrong with nearest neighbour, so their images use area/bilinear filtering.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import zoom


def zoom_nearest(arr2d: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (S, S) exactly as the official ACDC loader does it."""
    h, w = arr2d.shape
    if (h, w) == (size, size):
        return arr2d.copy()
    return zoom(arr2d, (size / h, size / w), order=0)


def resize_rgb(img_hwc: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (S, S, 3) uint8; box filter when shrinking, bilinear when growing."""
    h, w = img_hwc.shape[:2]
    if (h, w) == (size, size):
        return img_hwc
    method = Image.BOX if size < min(h, w) else Image.BILINEAR
    return np.asarray(Image.fromarray(img_hwc).resize((size, size), method))


def resize_mask(mask_hw: np.ndarray, size: int) -> np.ndarray:
    """Label maps must stay class ids, so always nearest."""
    h, w = mask_hw.shape
    if (h, w) == (size, size):
        return mask_hw
    return np.asarray(Image.fromarray(mask_hw).resize((size, size), Image.NEAREST))
