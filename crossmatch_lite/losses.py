"""Masked segmentation losses, computed for all classes at once, for 2D and 3D maps alike.

The official code evaluates Dice class by class and gathers the kept pixels
(`score[ignore != 1]`), which copies the tensors once per class and term. Multiplying
by a {0, 1} keep-mask sums exactly the same elements, so the value is identical while
every class is handled in one vectorised reduction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import LossConfig


@dataclass(frozen=True)
class DiceSpec:
    """Which classes a Dice loss averages over, and its smoothing constant. The official
    ACDC loss averages every class, background included; the official LA loss scores the
    foreground channel alone (`dice_loss(p[:, 1], y == 1)`), with smoothing 1e-5."""
    background: bool = LossConfig.dice_background  # the config's defaults: official ACDC
    smooth: float = LossConfig.dice_smooth


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, *spatial) class ids -> (B, K, *spatial) float."""
    return F.one_hot(labels.long(), num_classes).movedim(-1, 1).to(torch.float32)


def masked_dice_loss(probs: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor | None = None,
                     spec: DiceSpec = DiceSpec()) -> torch.Tensor:
    """Multi-class soft Dice loss over the kept pixels (or voxels).

    probs: (B, K, *spatial) softmax output; labels: (B, *spatial); keep: (B, *spatial) in
    {0, 1} or None for all pixels. Per class k the sums run over every kept pixel of the
    batch: 1 - (2 sum p_k y_k + s) / (sum p_k^2 + sum y_k^2 + s); the loss is the mean over
    the classes `spec` names (all, or all but the background).
    """
    probs = probs.float()
    target = one_hot(labels, probs.shape[1])
    w = torch.ones_like(labels, dtype=torch.float32) if keep is None else keep.float()
    w = w.unsqueeze(1)
    dims = (0,) + tuple(range(2, probs.dim()))
    inter = (probs * target * w).sum(dims)
    y_sum = (target * w).sum(dims)  # target is 0/1, so target^2 == target
    z_sum = (probs * probs * w).sum(dims)
    per_class = 1.0 - (2.0 * inter + spec.smooth) / (z_sum + y_sum + spec.smooth)
    return (per_class if spec.background else per_class[1:]).mean()


def masked_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   keep: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) at temperature T, averaged over kept pixels, times T^2.

    The T^2 factor keeps the gradient scale independent of T (Hinton et al., 2015).
    A batch with no kept pixel contributes 0, not NaN.
    """
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    w = keep.float()
    return (kl * w).sum() / w.sum().clamp_min(1.0) * (t * t)


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, spec: DiceSpec = DiceSpec()) -> torch.Tensor:
    """L_x = (CE + Dice) / 2 on the labeled batch."""
    ce = F.cross_entropy(logits.float(), labels.long())
    return (ce + masked_dice_loss(logits.float().softmax(dim=1), labels, spec=spec)) / 2.0
