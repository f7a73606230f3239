"""The presets against the official recipes' values, stated here with the official file each
comes from (AiEson/CrossMatch at commit 59772e0), independent of docs/configuration.md.

A preset value that drifts from the official one (a probability, a stride, a rate) fails
here by name, whatever the generated key table says.
"""
import pytest

from crossmatch_lite.config import load_config
from crossmatch_lite.evaluate import window_overlap

# ACDC/configs/acdc.yaml: crop_size 256, batch_size 12, lr 0.01, conf_thresh 0.95, drop_rate 0.5,
# epochs 300. ACDC/model/unet.py: encoder dropout [0.05, 0.1, 0.2, 0.3, 0.5], features
# [16, 32, 64, 128, 256]; PertDropout rates drop_rate * 0.5 and drop_rate * 1.5.
# ACDC/train_cross_match.py: SGD momentum 0.9, weight decay 1e-4, Nesterov; eta 0.3;
# loss = (loss_x + 0.25 loss_u_s1 + 0.25 loss_u_s2 + 0.5 loss_u_w_kd) / 2.
# ACDC/dataset/acdc.py and transform.py: ColorJitter(0.5, 0.5, 0.5, 0.25) with p 0.8, blur
# p 0.5 with sigma U(0.1, 2.0), CutMix p 0.5, area U(0.02, 0.4), ratio U(0.3, 1 / 0.3).
ACDC_DROP_RATE = 0.5
ACDC = {
    "data.size": 256, "train.batch_size": 12, "train.lr": 0.01, "pseudo.conf_thresh": 0.95,
    "pseudo.threshold_schedule": "fixed",
    "model.encoder_dropout": [0.05, 0.1, 0.2, 0.3, 0.5], "model.channels": [16, 32, 64, 128, 256],
    "perturb.feature.weak_rate": ACDC_DROP_RATE * 0.5, "perturb.feature.strong_rate": ACDC_DROP_RATE * 1.5,
    "train.optimizer": "sgd", "train.momentum": 0.9, "train.weight_decay": 0.0001, "train.nesterov": True,
    "distill.eta": 0.3, "loss.supervised": 1.0, "loss.strong": 0.5, "loss.distill": 0.5, "loss.normalizer": 2.0,
    "perturb.image.jitter_p": 0.8, "perturb.image.brightness": 0.5, "perturb.image.contrast": 0.5,
    "perturb.image.saturation": 0.5, "perturb.image.hue": 0.25,
    "perturb.image.blur_p": 0.5, "perturb.image.blur_sigma": [0.1, 2.0],
    "perturb.image.cutmix_p": 0.5, "perturb.image.cutmix_area": [0.02, 0.4],
    "perturb.image.cutmix_ratio": [0.3, 1 / 0.3],
}
# ACDC/splits/acdc/3/unlabeled.txt lists 1243 slices; the official loop runs
# len(trainloader_u) * epochs iterations, the unlabeled loader dropping its last partial batch.
ACDC_ITERATIONS = (1243 // 12) * 300

# LA/code/train.sh: --conf_thresh 0.75 --max_iterations 14000 --optimizer AdamW --base_lr 0.001
# (label_num 4, 8, 16). LA/code/train_cross_match.py: batch_size 2, eta 0.3, patch (112, 112, 80),
# AdamW weight decay 1e-4, lr and threshold ramps over 17000 iterations,
# loss = (loss_x + 0.25 loss_u_s1 + 0.25 loss_u_s2 + loss_u_w_kd) / 2, test window strides
# stride_xy 18, stride_z 4. LA/code/networks/vnet.py: Dropout3d(0.5) after the last encoder
# level and before the head; PertDropout at 0.5 -/+ pert_gap / 2 with pert_gap 0.5.
# LA/code/dataloaders/la_heart.py: bias field + gamma (log-gamma (-0.5, 0.5)) with p 0.8, blur
# sigma (0.1, 2) with p 0.5, CutMix p 0.5 with area U(0.02, 0.4).
LA_PERT_GAP = 0.5
LA = {
    "pseudo.ramp_start": 0.75, "pseudo.threshold_schedule": "sigmoid", "pseudo.ramp_iterations": 17000,
    "train.iterations": 14000, "train.optimizer": "adamw", "train.lr": 0.001, "train.poly_iterations": 17000,
    "train.batch_size": 2, "train.weight_decay": 0.0001, "distill.eta": 0.3, "data.patch": [112, 112, 80],
    "loss.supervised": 1.0, "loss.strong": 0.5, "loss.distill": 1.0, "loss.normalizer": 2.0,
    "eval.stride": [18, 18, 4],
    "model.encoder_dropout": [0.0, 0.0, 0.0, 0.0, 0.5], "model.head_dropout": 0.5,
    "perturb.feature.weak_rate": 0.5 - LA_PERT_GAP / 2, "perturb.feature.strong_rate": 0.5 + LA_PERT_GAP / 2,
    "perturb.image.bias_gamma_p": 0.8, "perturb.image.log_gamma": [-0.5, 0.5],
    "perturb.image.blur_p": 0.5, "perturb.image.blur_sigma": [0.1, 2.0],
    "perturb.image.cutmix_p": 0.5, "perturb.image.cutmix_area": [0.02, 0.4],
}
LA_LABELED = (4, 8, 16)


def _value(cfg, key):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return list(obj) if isinstance(obj, tuple) else obj


@pytest.mark.parametrize("preset, official", [("configs/crossmatch.yaml", ACDC), ("configs/la.yaml", LA)],
                         ids=["acdc", "la"])
def test_preset_values_are_the_official_ones(preset, official):
    cfg = load_config(preset)
    wrong = {k: (_value(cfg, k), v) for k, v in official.items() if _value(cfg, k) != pytest.approx(v)}
    assert not wrong, f"{preset}: (preset, official) differ: {wrong}"


def test_acdc_iterations_are_the_official_epochs_in_iterations():
    assert load_config("configs/crossmatch.yaml").train.iterations == pytest.approx(ACDC_ITERATIONS, rel=0.03)


def test_la_labeled_count_is_one_of_the_official_runs():
    assert load_config("configs/la.yaml").data.labeled in LA_LABELED


def test_la_window_steps_are_the_official_strides():
    """The official test steps its (112, 112, 80) window by 18, 18, 4 voxels; MONAI's overlap
    for the preset's stride must give exactly those steps."""
    cfg = load_config("configs/la.yaml")
    overlap = window_overlap(cfg.data.patch, cfg.eval.stride)
    steps = [int(p * (1 - o)) for p, o in zip(cfg.data.patch, overlap)]
    assert steps == [18, 18, 4]

