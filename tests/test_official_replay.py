"""Our step against the official code's own numbers.

`tests/official/acdc_step.pt` was written by running the unmodified official training
script for one iteration (tests/official/make_fixture.py says how). Here the same batch,
initial weights and dropout masks go through our step with the default config (every
switch on): every loss term, every parameter's gradient and every BatchNorm running
statistic after the step must match. The strong views and CutMix boxes enter through
our own view-making code, so its pasting is checked as well.

CROSSMATCH_LITE_TEST_DEVICE=cuda runs the replay on a GPU.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from crossmatch_lite.views import make_unlabeled_views, mixing, photometric
from crossmatch_lite.config import Config
from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from
from crossmatch_lite.models.official_weights import from_official, official_to_ours
from crossmatch_lite.models.unet import UNet

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "official"))
from tape import DropoutTape, TapeMismatch  # noqa: E402

FIXTURE = HERE / "official" / "acdc_step.pt"
DEVICE = torch.device(os.environ.get("CROSSMATCH_LITE_TEST_DEVICE", "cpu"))
TERMS = ("x", "s1", "s2", "kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong",
         "kd_cross_weak", "kd_cross_strong", "kd")


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE, weights_only=True)


def official_views(fx, monkeypatch, cfg):
    """Our views of the fixture's batch: strong views and boxes handed to our own
    make_unlabeled_views, which pastes the source's strong views into the boxes."""
    b = {k: v.to(DEVICE) for k, v in fx["batch"].items()}
    strong = {id(b["img_u_w"]): [b["img_u_s1"], b["img_u_s2"]],
              id(b["img_u_w_mix"]): [b["img_u_s1_mix"], b["img_u_s2_mix"]]}
    boxes = [b["cutmix_box1"], b["cutmix_box2"]]
    monkeypatch.setattr(photometric, "strong_view_2d", lambda u, c, g: strong[id(u)].pop(0))
    monkeypatch.setattr(mixing, "cutmix_boxes_2d", lambda *a, **k: boxes.pop(0))
    views = make_unlabeled_views(b["img_u_w"], b["img_u_w_mix"], cfg.perturb.image, torch.Generator())
    return b["img_x"], b["mask_x"], views


def replay(fx, monkeypatch, cfg=None, model=None):
    cfg = cfg or Config()
    if model is None:
        model = UNet(1, 4, fx["channels"])
        model.load_state_dict(from_official(fx["init"]))
    model.to(DEVICE).train()
    x, y, views = official_views(fx, monkeypatch, cfg)
    tape = DropoutTape(list(fx["dropout"]))
    with tape.installed():
        out = crossmatch_step(model, x, y, views, plan_from(cfg), fx["conf_thresh"])
        out.loss.backward()
    tape.assert_used_up()
    return out, model


def test_fixture_comes_from_the_official_code(fx):
    src = fx["source"]
    assert src["repository"] == "AiEson/CrossMatch" and src["commit"].startswith("59772e0")
    assert 0.2 < fx["mask_ratio"] < 0.9  # the threshold keeps some pseudo-labels and drops others
    assert all(b.sum() > 0 and not torch.equal(b, b.transpose(-1, -2))
               for k, b in fx["batch"].items() if k.startswith("cutmix_box"))


def test_official_step_replays_term_by_term(fx, monkeypatch):
    out, _ = replay(fx, monkeypatch)
    for name in TERMS:
        assert out.terms[name] == pytest.approx(fx["terms"][name], abs=2e-6), name
    assert out.loss.item() == pytest.approx(fx["terms"]["loss"], abs=2e-6)
    assert out.mask_ratio == pytest.approx(fx["mask_ratio"], abs=1e-6)


def test_official_step_replays_gradients_and_batchnorm_statistics(fx, monkeypatch):
    _, model = replay(fx, monkeypatch)
    params = dict(model.named_parameters())
    for name, norm in fx["grad_norms"].items():
        grad = params[official_to_ours(name)].grad
        assert grad.norm().item() == pytest.approx(norm, rel=1e-4, abs=1e-7), name
    # The source pass runs in train mode, so it moves the running statistics too.
    state = model.state_dict()
    for name, value in fx["after"].items():
        torch.testing.assert_close(state[official_to_ours(name)].cpu(), value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("mode", ["eval", "batch_stats", "train"])
def test_other_source_pass_modes_are_not_the_official_step(fx, monkeypatch, mode):
    """The earlier and faster modes are named options, not the official step: they
    either draw other dropout masks or give other teachers."""
    cfg = Config()
    cfg.pseudo.source_pass_mode = mode
    try:
        out, _ = replay(fx, monkeypatch, cfg)
    except TapeMismatch:
        return
    assert any(out.terms[k] != pytest.approx(fx["terms"][k], abs=1e-5) for k in TERMS)


def test_transposed_convolution_network_is_not_the_official_one(fx):
    with pytest.raises(RuntimeError):  # other parameters: the official weights do not load
        UNet(1, 4, fx["channels"], upsample="transpose").load_state_dict(from_official(fx["init"]))


