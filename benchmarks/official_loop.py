"""The official ACDC CutMix box sampler, restated: the statement the batch-wise sampler of
`crossmatch_lite.views.mixing` is compared with (tests/test_views_mixing.py).

Written from a description of the official ACDC dataset code (AiEson/CrossMatch), not
copied from it. It draws from Python's `random` and NumPy's
legacy generator as the official code does, in the same order: one uniform for "is there
a box" (p 0.5), then the area, then aspect ratio and corner, re-drawn until the box fits.

Speed is measured against the unmodified official scripts (benchmarks/official_acdc_speed.py,
benchmarks/official_la_speed.py), not against a re-creation.
"""
from __future__ import annotations

import numpy as np
import torch


def cutmix_box(size, pyrng, nprng, p=0.5, area=(0.02, 0.4), ratio=(0.3, 1 / 0.3)) -> torch.Tensor:
    """A (size, size) float mask, 1 inside the box (all 0 with probability 1 - p)."""
    mask = torch.zeros(size, size)
    if pyrng.random() > p:
        return mask
    a = nprng.uniform(*area) * size * size
    while True:
        r = nprng.uniform(*ratio)
        bw, bh = int(np.sqrt(a / r)), int(np.sqrt(a * r))
        x, y = nprng.randint(0, size), nprng.randint(0, size)
        if x + bw <= size and y + bh <= size:
            break
    mask[y:y + bh, x:x + bw] = 1
    return mask
