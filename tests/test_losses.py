"""Each loss equals its written-out definition on a fixed batch."""
import math

import pytest
import torch
import torch.nn.functional as F

from crossmatch_lite.losses import masked_dice_loss, masked_kl_loss, supervised_loss
from benchmarks.reference_step import gather_dice


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 12, 10, generator=g) * 3
    labels = torch.randint(0, 4, (3, 12, 10), generator=g)
    keep = torch.rand(3, 12, 10, generator=g) > 0.4
    return logits, labels, keep


def test_masked_dice_equals_per_class_gathered_definition(batch):
    logits, labels, keep = batch
    probs = logits.softmax(1)
    ours = masked_dice_loss(probs, labels, keep)
    ref = gather_dice(probs, labels, ignore=(~keep).float())
    assert ours.item() == pytest.approx(ref.item(), abs=1e-6)
    assert 0.2 < ours.item() < 1.0  # a real value, not a degenerate 0 or 1


def test_masked_dice_without_mask_uses_every_pixel(batch):
    logits, labels, _ = batch
    probs = logits.softmax(1)
    assert masked_dice_loss(probs, labels).item() == pytest.approx(gather_dice(probs, labels).item(), abs=1e-6)


def test_masked_dice_hand_computed_value():
    # 2 classes, 2 pixels, one ignored: only pixel 0 (p=[0.8,0.2], y=0) counts.
    probs = torch.tensor([[0.8, 0.3], [0.2, 0.7]]).view(1, 2, 1, 2)
    labels = torch.tensor([[0, 1]]).view(1, 1, 2)
    keep = torch.tensor([[1, 0]]).view(1, 1, 2)
    s = 1e-4
    d0 = 1 - (2 * 0.8 + s) / (0.64 + 1 + s)
    d1 = 1 - (0 + s) / (0.04 + 0 + s)
    assert masked_dice_loss(probs, labels, keep).item() == pytest.approx((d0 + d1) / 2, rel=1e-5)


def test_masked_kl_equals_definition(batch):
    logits, _, keep = batch
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(logits.shape, generator=g)
    t = 2.0
    ours = masked_kl_loss(logits, teacher, keep, temperature=t)
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="none").sum(1)
    ref = kl[keep].mean() * t * t
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    assert masked_kl_loss(logits, teacher, torch.zeros_like(keep)).item() == 0.0


def test_supervised_loss_is_mean_of_ce_and_dice(batch):
    logits, labels, _ = batch
    ce = F.cross_entropy(logits, labels)
    ref = (ce + gather_dice(logits.softmax(1), labels)) / 2
    assert supervised_loss(logits, labels).item() == pytest.approx(ref.item(), rel=1e-6)
    assert not math.isclose(ce.item(), ref.item(), rel_tol=1e-3)
