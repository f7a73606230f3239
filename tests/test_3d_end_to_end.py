"""The 3D half: VNet, 3D views, the shared step on volumes, the LA schedule, sliding-window
evaluation, the LA split, and a 3D run that learns and resumes exactly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from crossmatch_lite.views import geometric, make_unlabeled_views, mixing, photometric
from crossmatch_lite.config import ConfigError, load_config
from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from
from crossmatch_lite.data import load_data
from crossmatch_lite.data.base import Case
from crossmatch_lite.evaluate import predict_volume
from crossmatch_lite.features import drop_features
from crossmatch_lite.losses import DiceSpec, masked_dice_loss
from crossmatch_lite.models import build_model
from crossmatch_lite.train import Trainer, conf_threshold, train
from killing import train_until_killed_at

TOY = ["train.threads=1", "train.progress=false", "train.amp=off"]
LA_ROOT = Path("data/LA")


def toy_cfg(*extra: str):
    return load_config("configs/toy_la.yaml", TOY + list(extra))


def test_feature_dropout_drops_whole_3d_channels():
    f = torch.ones(2, 8, 4, 4, 4)
    (out,) = drop_features([f], 0.5)
    per_channel = out.flatten(2)
    # Each channel is either all zero or all 1 / (1 - 0.5): Dropout3d, not element dropout.
    assert torch.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert (per_channel == 0).all(-1).any()


# ------------------------------------------------------------------ losses
def test_foreground_dice_is_the_official_la_formula():
    torch.manual_seed(0)
    probs = torch.rand(2, 2, 6, 6, 4).softmax(1)
    labels = (torch.rand(2, 6, 6, 4) > 0.6).long()
    keep = torch.rand(2, 6, 6, 4) > 0.3
    p, y = probs[:, 1][keep], (labels == 1).float()[keep]
    official = 1 - (2 * (p * y).sum() + 1e-5) / ((p * p).sum() + (y * y).sum() + 1e-5)
    ours = masked_dice_loss(probs, labels, keep, DiceSpec(background=False, smooth=1e-5))
    assert ours.item() == pytest.approx(official.item(), rel=1e-6)
    with_background = masked_dice_loss(probs, labels, keep, DiceSpec(background=True, smooth=1e-5))
    assert with_background.item() != pytest.approx(official.item(), rel=1e-3)


# ------------------------------------------------------------------ schedule
def test_sigmoid_threshold_follows_the_official_la_loop():
    cfg = load_config("configs/la.yaml")
    ln2 = math.log(2)
    assert conf_threshold(cfg, 0) == 0.75  # the command-line value, before the first update
    assert conf_threshold(cfg, 1) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * ln2)
    assert conf_threshold(cfg, 8501) == pytest.approx((0.75 + 0.25 * math.exp(-5 * 0.25)) * ln2)
    assert conf_threshold(cfg, 14000) == pytest.approx((0.75 + 0.25 * math.exp(-5 * (3001 / 17000) ** 2)) * ln2)  # ramp(it - 1)
    clean = load_config("configs/la.yaml", ["pseudo.thresh_scale=1.0"])
    assert conf_threshold(clean, 17001) == pytest.approx(1.0)


# ------------------------------------------------------------------ views
def test_weak_view_moves_image_and_label_together():
    gen = torch.Generator().manual_seed(0)
    vols = [torch.randn(1, 40 + i, 36, 20) for i in range(4)]
    labs = [(v[0] > 0.5).to(torch.uint8) for v in vols]
    x, y = geometric.weak_view_3d(vols, labs, (32, 32, 16), gen)
    assert x.shape == (4, 1, 32, 32, 16) and y.shape == (4, 32, 32, 16)
    assert torch.equal(y.bool(), x[:, 0] > 0.5)


def test_weak_view_pads_volumes_no_larger_than_the_patch():
    gen = torch.Generator().manual_seed(0)
    x, y = geometric.weak_view_3d([torch.ones(1, 40, 40, 16)], [torch.ones(40, 40, 16, dtype=torch.uint8)],
                                  (32, 32, 16), gen)
    assert x.shape == (1, 1, 32, 32, 16)
    # z equals the patch, so the official crop pads (16 - 16) // 2 + 3 = 3 zeros on each side.
    assert x.sum() < 32 * 32 * 16


def test_official_box_axes_keep_boxes_below_the_depth_on_x():
    cfg = load_config("configs/la.yaml", ["perturb.image.cutmix_p=1.0"]).perturb.image
    patch = (112, 112, 80)
    official = mixing.cutmix_boxes_3d(200, patch, cfg, torch.Generator().manual_seed(0))
    cfg.cutmix_box_axes = "clean"
    clean = mixing.cutmix_boxes_3d(200, patch, cfg, torch.Generator().manual_seed(0))
    # official: mask[z:z+d, ...] with z + d < 80, so nothing at x >= 80; clean boxes reach there.
    assert official[:, 80:].sum() == 0 and clean[:, 80:].sum() > 0
    # and the official boxes are cut off along z, so they are smaller on average.
    assert official.flatten(1).sum(1).mean() < clean.flatten(1).sum(1).mean()


def test_strong_views_follow_the_seed():
    cfg = load_config("configs/la.yaml").perturb.image
    u = torch.randn(2, 1, 32, 32, 16)
    a = photometric.strong_view_3d(u, cfg, torch.Generator().manual_seed(3))
    b = photometric.strong_view_3d(u, cfg, torch.Generator().manual_seed(3))
    c = photometric.strong_view_3d(u, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------ the shared step on volumes
ALL_TERMS = {"x", "s1", "s2", "s", "kd", "kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong",
             "kd_cross_weak", "kd_cross_strong"}


def _toy_step(*switches):
    """One step of a narrow VNet on a random 3D batch under the toy_la preset plus `switches`."""
    cfg = load_config("configs/toy_la.yaml", TOY + ["model.channels=[2,4,8,16,32]"] + list(switches))
    torch.manual_seed(0)
    net = build_model(cfg.model, 1, 2).train()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 1, 32, 32, 16), (torch.rand(2, 32, 32, 16) > 0.5).long()
    views = make_unlabeled_views(torch.randn(2, 1, 32, 32, 16), torch.randn(2, 1, 32, 32, 16),
                                 cfg.perturb.image, gen)
    return crossmatch_step(net, x, y, views, plan_from(cfg), 0.6)


@pytest.mark.parametrize("switches, expected", [
    ([], ALL_TERMS),
    (["perturb.image.enabled=false", "perturb.feature.enabled=false", "distill.enabled=false"], {"x"}),
    (["perturb.feature.enabled=false", "distill.enabled=false"], {"x", "s1", "s2", "s"}),
    (["perturb.image.enabled=false"], {"x", "kd", "kd_w_weak", "kd_w_strong"}),
    (["distill.cross_terms=false"], ALL_TERMS - {"kd_cross_weak", "kd_cross_strong"}),
])
def test_switches_remove_exactly_their_terms_in_3d(switches, expected):
    out = _toy_step(*switches)
    assert set(out.terms) == expected
    assert torch.isfinite(out.loss)


def test_the_3d_loss_is_the_official_la_combination_of_its_terms():
    """L = (L_x + 0.25 L_s1 + 0.25 L_s2 + L_kd) / 2, L_kd = 0.7 mean(a..d) + 0.3 mean(e, f)."""
    t = _toy_step()
    out = t.terms
    ad = [out[k] for k in ("kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong")]
    kd = 0.7 * sum(ad) / 4 + 0.3 * (out["kd_cross_weak"] + out["kd_cross_strong"]) / 2
    assert out["kd"] == pytest.approx(kd, rel=1e-6)
    assert t.loss.item() == pytest.approx((out["x"] + 0.25 * out["s1"] + 0.25 * out["s2"] + kd) / 2, rel=1e-6)


# ------------------------------------------------------------------ evaluation
def test_sliding_window_visits_the_official_window_grid():
    calls = []

    class Counter(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    case = Case("c", np.zeros((1, 183, 140, 88), np.float32), np.zeros((183, 140, 88), np.uint8), None)
    predict_volume(Counter(), case, (112, 112, 80), (18, 18, 4), 1, torch.device("cpu"), batch=1)
    # test_util.test_single_case: ceil((size - patch) / stride) + 1 windows per axis.
    official = math.prod(math.ceil((s - p) / st) + 1 for s, p, st in zip((183, 140, 88), (112, 112, 80), (18, 18, 4)))
    assert sum(calls) == official == 5 * 3 * 3


def test_shrunk_prediction_comes_back_on_the_native_grid():
    class Half(torch.nn.Module):  # foreground where the (shrunk) image is positive
        def forward(self, x):
            return torch.cat([1 - 2 * x, 2 * x - 1], 1) * 10

    img = np.zeros((1, 40, 36, 24), np.float32)
    img[0, 10:30, 8:28, 6:18] = 1
    case = Case("c", img, (img[0] > 0).astype(np.uint8), None)
    pred = predict_volume(Half(), case, (16, 16, 16), (8, 8, 8), 2, torch.device("cpu"))
    assert pred.shape == (40, 36, 24)
    assert (pred == case.label).mean() > 0.97


def test_trainer_evaluation_repeats_exactly_and_the_next_step_trains_in_train_mode(tmp_path):
    """Evaluation switches the model to eval mode and leaves it there (predict_volume does not
    put the mode back); train_step switches it back to train mode before every step."""
    t = Trainer(toy_cfg("model.channels=[2,4,8,16,32]", "eval.distances=false"), tmp_path / "run")
    t.model.train()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    cases = t.data.val_cases[:2]
    first, second = (t.evaluate(cases, keep_predictions=True)["_predictions"] for _ in range(2))
    assert all(np.array_equal(first[c.id], second[c.id]) for c in cases)
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())  # running stats kept
    modes = []
    for m in t.model.modules():
        if isinstance(m, (torch.nn.BatchNorm3d, torch.nn.Dropout3d)):
            m.register_forward_pre_hook(lambda mod, inp: modes.append(mod.training))
    t.train_step()
    assert modes and all(modes)


# ------------------------------------------------------------------ config
def test_3d_data_with_a_2d_network_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="model.arch=vnet"):
        load_config("configs/crossmatch.yaml", ["data.name=toy_la"])


def test_a_poly_horizon_shorter_than_the_run_is_refused():
    with pytest.raises(ConfigError, match="poly_iterations"):
        load_config("configs/la.yaml", ["train.poly_iterations=100"])


def test_extends_loops_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_la_presets_differ_from_la_only_where_they_say():
    la, sup = load_config("configs/la.yaml"), load_config("configs/la_supervised.yaml")
    assert (sup.data, sup.model, sup.train) == (la.data, la.model, la.train)
    assert plan_from(sup).unlabeled is False
    assert load_config("configs/la_fully_supervised.yaml").data.labeled == 72


# ------------------------------------------------------------------ runs
def test_a_toy_3d_run_learns(tmp_path):
    cfg = toy_cfg("train.iterations=100", "train.val_every=100", "eval.distances=false")
    summary = train(cfg, tmp_path / "run")
    untrained = Trainer(toy_cfg(), tmp_path / "fresh")
    before = untrained.evaluate(untrained.data.test_cases, model=untrained.model)["dice"]["mean"]
    assert summary["test"]["dice"]["mean"] > 0.6 > before
    assert json.loads((tmp_path / "run" / "split.json").read_text())["dataset"] == "toy_la"


def test_a_killed_3d_run_resumes_exactly(tmp_path, monkeypatch):
    cfg = toy_cfg("train.iterations=6", "train.val_every=2", "eval.distances=false",
                  "model.channels=[2,4,8,16,32]")
    data = load_data(cfg.data, cfg.train.seed)
    straight = train(cfg, tmp_path / "a", data=data)
    train_until_killed_at(cfg, tmp_path / "b", data, monkeypatch, 4)  # iteration 2 checkpointed, 3 lost
    resumed = train(cfg, tmp_path / "b", data=data)
    a = torch.load(tmp_path / "a" / "latest.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test"]["dice"] == straight["test"]["dice"]


# ------------------------------------------------------------------ the real files
needs_la = pytest.mark.skipif(not (LA_ROOT / "train.list").is_file(),
                              reason="real LA data absent: python -m data_download la --dest data/LA")


@needs_la
def test_la_split_holds_out_val_from_training_scans_never_from_test():
    from crossmatch_lite.data.la import la_split

    read = lambda n: (LA_ROOT / n).read_text().split()  # noqa: E731
    split = la_split(LA_ROOT, 8, 8, seed=0)
    assert split["labeled"] == sorted(read("train_8_label.list"))
    assert set(split["test"]) == set(read("test.list"))
    assert not set(split["val"]) & (set(read("train_16_label.list")) | set(read("test.list")))
    assert len(split["unlabeled"]) == 80 - 8 - 8
    assert la_split(LA_ROOT, 16, 8, seed=5)["val"] == split["val"]  # the same val for every count and seed


def test_nan_in_an_la_volume_is_refused_with_file_and_count(tmp_path):
    import h5py

    from crossmatch_lite.data import DataError
    from crossmatch_lite.data.la import read_case

    (tmp_path / "A1").mkdir()
    image = np.zeros((8, 6, 4), np.float32)
    image[1, 2, 3] = np.nan
    with h5py.File(tmp_path / "A1" / "mri_norm2.h5", "w") as f:
        f["image"], f["label"] = image, np.zeros((8, 6, 4), np.uint8)
    with pytest.raises(DataError, match=r"A1/mri_norm2\.h5: image holds 1 non-finite value\(s\)"):
        read_case(tmp_path, "A1")
