"""Each loss equals its written-out definition on a fixed batch."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from crossmatch_lite.losses import DiceSpec, masked_dice_loss, masked_kl_loss, one_hot, supervised_loss
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


def _class_dice(probs, labels, c, smooth):
    """One class's Dice loss term, written out over every pixel."""
    p, y = probs[:, c].flatten(), (labels == c).float().flatten()
    return 1 - (2 * (p * y).sum() + smooth) / ((p * p).sum() + (y * y).sum() + smooth)


def test_foreground_dice_averages_every_class_after_the_background(batch):
    # The official LA loss leaves the background out; with 4 classes that is the mean of
    # classes 1, 2 and 3, neither all four nor fewer than three.
    logits, labels, _ = batch
    probs = logits.softmax(1)
    fg = DiceSpec(background=False, smooth=1e-5)
    per_class = [_class_dice(probs, labels, c, 1e-5).item() for c in range(4)]
    ours = masked_dice_loss(probs, labels, spec=fg).item()
    assert ours == pytest.approx(sum(per_class[1:]) / 3, rel=1e-6)
    assert not math.isclose(ours, sum(per_class) / 4, rel_tol=1e-3)
    assert not math.isclose(ours, sum(per_class[2:]) / 2, rel_tol=1e-3)


def test_supervised_loss_scores_dice_with_the_spec_it_is_given(batch):
    logits, labels, _ = batch
    fg = DiceSpec(background=False, smooth=1e-5)
    probs = logits.softmax(1)
    dice_fg = sum(_class_dice(probs, labels, c, 1e-5) for c in range(1, 4)) / 3
    ref = (F.cross_entropy(logits, labels) + dice_fg) / 2
    assert supervised_loss(logits, labels, fg).item() == pytest.approx(ref.item(), rel=1e-6)
    assert not math.isclose(supervised_loss(logits, labels).item(), ref.item(), rel_tol=1e-3)


def test_dice_counts_a_class_the_labels_lack(batch):
    # A patch without the highest class (a crop with no tumour) still averages its term:
    # the class count comes from the prediction's channels, not from the labels.
    logits, labels, _ = batch
    labels = labels.clamp_max(2)
    probs = logits.softmax(1)
    per_class = [_class_dice(probs, labels, c, 1e-4).item() for c in range(4)]
    assert masked_dice_loss(probs, labels).item() == pytest.approx(sum(per_class) / 4, rel=1e-6)
    assert per_class[3] > 0.99  # the absent class: no overlap, its term is close to 1


def test_masked_kl_default_temperature_is_one(batch):
    logits, _, keep = batch
    teacher = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    kl = F.kl_div(F.log_softmax(logits, 1), F.softmax(teacher, 1), reduction="none").sum(1)
    assert masked_kl_loss(logits, teacher, keep).item() == pytest.approx(kl[keep].mean().item(), rel=1e-5)


def test_masked_kl_of_one_kept_pixel_is_that_pixels_divergence(batch):
    # The mean divides by the number of kept pixels; the floor of 1 only guards an empty mask.
    logits, _, _ = batch
    teacher = torch.randn(logits.shape, generator=torch.Generator().manual_seed(3))
    keep = torch.zeros(logits.shape[0], *logits.shape[2:], dtype=torch.bool)
    keep[1, 4, 7] = True
    kl = F.kl_div(F.log_softmax(logits, 1), F.softmax(teacher, 1), reduction="none").sum(1)
    assert masked_kl_loss(logits, teacher, keep).item() == pytest.approx(kl[1, 4, 7].item(), rel=1e-5)


@pytest.mark.parametrize("spatial", [(12, 10), (6, 5, 4)])
def test_masked_kl_names_the_class_axis_and_warns_nothing(spatial):
    # Left to itself, log_softmax picks an axis and warns about it at every training step;
    # the class axis is 1 for 2D images and 3D volumes alike.
    g = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 3, *spatial, generator=g), torch.randn(2, 3, *spatial, generator=g)
    keep = torch.ones(2, *spatial, dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = masked_kl_loss(student, teacher, keep)
    kl = F.kl_div(F.log_softmax(student, 1), F.softmax(teacher, 1), reduction="none").sum(1)
    assert ours.item() == pytest.approx(kl.mean().item(), rel=1e-5)


def test_one_hot_puts_the_classes_on_axis_1_as_floats():
    labels = torch.tensor([[[0, 2], [1, 2]]])  # (B=1, 2, 2)
    out = one_hot(labels, 4)
    assert out.shape == (1, 4, 2, 2) and out.dtype == torch.float32
    assert torch.equal(out.argmax(1), labels) and torch.equal(out.sum(1), torch.ones(1, 2, 2))
    assert out[:, 3].sum() == 0  # a class absent from the labels is an all-zero channel
