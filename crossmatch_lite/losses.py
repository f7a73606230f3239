"""Masked segmentation losses, computed for all classes at once.

The official code evaluates Dice class by class and gathers the kept pixels
(`score[ignore != 1]`), which copies the tensors once per class and term. Multiplying
by a {0, 1} keep-mask sums exactly the same elements, so the value is identical while
every class is handled in one vectorised reduction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTH = 1e-4  # the official ACDC DiceLoss's smoothing constant


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) class ids -> (B, K, H, W) float."""
    return F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).to(torch.float32)


def masked_dice_loss(probs: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor | None = None,
                     smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """Multi-class soft Dice loss over the kept pixels, background included.

    probs: (B, K, H, W) softmax output; labels: (B, H, W); keep: (B, H, W) in {0, 1} or
    None for all pixels. Per class k the sums run over every kept pixel of the batch:
    1 - (2 sum p_k y_k + s) / (sum p_k^2 + sum y_k^2 + s); the loss is the class mean.
    """
    probs = probs.float()
    target = one_hot(labels, probs.shape[1])
    w = torch.ones_like(labels, dtype=torch.float32) if keep is None else keep.float()
    w = w.unsqueeze(1)
    dims = (0, 2, 3)
    inter = (probs * target * w).sum(dims)
    y_sum = (target * w).sum(dims)  # target is 0/1, so target^2 == target
    z_sum = (probs * probs * w).sum(dims)
    return (1.0 - (2.0 * inter + smooth) / (z_sum + y_sum + smooth)).mean()


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


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_x = (CE + Dice) / 2 on the labeled batch."""
    ce = F.cross_entropy(logits.float(), labels.long())
    return (ce + masked_dice_loss(logits.float().softmax(dim=1), labels)) / 2.0
