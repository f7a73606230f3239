"""CutMix's one operation, shared by the views (pasting images) and the step (pasting
teachers' logits into the pseudo-labels): inside a box, take the other tensor's values.

Boxes are drawn with the views (`views.mixing.cutmix_boxes_2d`, `views.mixing.cutmix_boxes_3d`);
the step only pastes, so it needs nothing else from the augmentation code.
"""
from __future__ import annotations

import torch


def paste(target: torch.Tensor, source: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Inside the box, take the source's values.

    target, source: images (B, C, *spatial) or maps (B, *spatial) / (B, K, *spatial);
    box: (B, *spatial) in {0, 1}. 2D and 3D alike.
    """
    m = box.bool()
    while m.dim() < target.dim():
        m = m.unsqueeze(1)
    return torch.where(m, source, target)
