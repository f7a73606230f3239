"""Our 3D (Left Atrium) step against the official code's own numbers.

`tests/official/la_step.pt` was written by running the unmodified official LA training
script for one iteration (tests/official/make_fixture_la.py says how). Here the same batch,
initial weights and dropout masks go through our step with the LA preset (configs/la.yaml,
narrowed to channels 4-8-16-32-64 and a 32x32x16 patch): every loss term, every
parameter's gradient, every BatchNorm running statistic after the step, and the parameters
after one step of our optimizer must match; and our Dice equals the official dice_loss on
small maps where its smoothing constant shows. Our VNet loads the official weights unchanged
(same state_dict keys).

CROSSMATCH_LITE_TEST_DEVICE=cuda runs the replay on a GPU (TF32 off).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch

from crossmatch_lite.views import UnlabeledViews
from crossmatch_lite.cutmix import paste
from crossmatch_lite.config import load_config
from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from
from crossmatch_lite.losses import masked_dice_loss
from crossmatch_lite.models import build_model
from crossmatch_lite.train import conf_threshold, make_optimizer, sigmoid_rampup
from crossmatch_lite.models.vnet import VNet

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "official"))
from lattice import digest, lattice_init, signs  # noqa: E402
from tape import DropoutTape, TapeMismatch  # noqa: E402

FIXTURE = HERE / "official" / "la_step.pt"
PRESET = HERE.parent / "configs" / "la.yaml"
NARROW = ["model.channels=[4,8,16,32,64]", "data.patch=[32,32,16]"]
DEVICE = torch.device(os.environ.get("CROSSMATCH_LITE_TEST_DEVICE", "cpu"))
TERMS = ("x", "s1", "s2", "kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong",
         "kd_cross_weak", "kd_cross_strong", "kd")
IMAGES = ("img_x", "img_u_w", "img_u_s1", "img_u_s2", "img_u_w_mix", "img_u_s1_mix", "img_u_s2_mix")


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 convolutions and matmuls on a GPU (TF32 would differ at 1e-3)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def la_config(*extra: str):
    return load_config(PRESET, NARROW + list(extra))


def official_model(fx, cfg) -> VNet:
    """Our VNet as the preset builds it, with the fixture's initial weights (regenerated,
    see official/lattice.py, and checked against the digest of the official run's)."""
    model = build_model(cfg.model, 1, 2)
    assert isinstance(model, VNet)
    lattice_init(model, {"out_conv": fx["logit_gain"]})
    state = model.state_dict()
    assert digest(state) == fx["init_digest"], "initial weights differ from the official run's"
    model.load_state_dict(state)
    return model


def batch(fx) -> dict[str, torch.Tensor]:
    b = fx["batch"]
    out = {k: ((b[k].float() - 128) / 32).to(DEVICE) for k in IMAGES}  # codes -> the values the loaders fed
    out["mask_x"] = b["mask_x"].long().to(DEVICE)
    out["cutmix_box1"], out["cutmix_box2"] = b["cutmix_box1"].float().to(DEVICE), b["cutmix_box2"].float().to(DEVICE)
    return out


def official_views(b) -> UnlabeledViews:
    """The strong views pasted by our paste (the official script pastes in place)."""
    boxes = [b["cutmix_box1"], b["cutmix_box2"]]
    strong = [paste(b["img_u_s1"], b["img_u_s1_mix"], boxes[0]), paste(b["img_u_s2"], b["img_u_s2_mix"], boxes[1])]
    return UnlabeledViews(u_w=b["img_u_w"], m_w=b["img_u_w_mix"], strong=strong, boxes=boxes)


def replay(fx, cfg=None):
    cfg = cfg or la_config()
    model = official_model(fx, cfg).to(DEVICE).train()
    b = batch(fx)
    tape = DropoutTape(list(fx["dropout"]))
    with tape.installed():
        out = crossmatch_step(model, b["img_x"], b["mask_x"], official_views(b), plan_from(cfg),
                              fx["conf_thresh"])
        out.loss.backward()
    tape.assert_used_up()
    return out, model, cfg


@pytest.fixture(scope="module")
def replayed(fx):
    return replay(fx)


def test_official_la_fixture_comes_from_the_official_code(fx):
    src = fx["source"]
    assert src["repository"] == "AiEson/CrossMatch" and src["commit"].startswith("59772e0")
    assert src["script"] == "LA/code/train_cross_match.py"
    assert fx["conf_thresh"] == 0.75 and fx["optimizer"]["name"] == "AdamW"
    assert 0.2 < fx["mask_ratio"] < 0.9 and 0.2 < fx["mask_ratio_source"] < 0.9
    for k in ("cutmix_box1", "cutmix_box2"):  # non-empty in one sample, and not cubes
        box = fx["batch"][k]
        assert box.any() and not box.flatten(1).any(1).all()
        assert tuple(box.shape[1:]) == tuple(fx["patch"])
    # every dropout of the official step is a Dropout3d: bottleneck and head 0.5, streams 0.25/0.75
    assert {r["kind"] for r in fx["dropout"]} == {"dropout3d"} and len(fx["dropout"]) == 35


def test_official_la_pasted_views_match():
    """Our paste of the source's strong views into the boxes gives the official script's views."""
    fx_ = torch.load(FIXTURE, weights_only=True)
    b = {k: v.cpu() for k, v in batch(fx_).items()}
    views = official_views(b)
    for k, v in zip(("img_u_s1", "img_u_s2"), views.strong):
        assert digest({k: v}) == fx_["pasted_digest"][k], k


def test_official_la_step_replays_term_by_term(fx, replayed):
    out, _, _ = replayed
    for name in TERMS:
        assert out.terms[name] == pytest.approx(fx["terms"][name], abs=2e-6), name
    assert out.loss.item() == pytest.approx(fx["terms"]["loss"], abs=2e-6)
    assert out.mask_ratio == pytest.approx(fx["mask_ratio"], abs=1e-6)


def _stats_close(t: torch.Tensor, want: list[float], salt: int, rel: float, floor: float, what: str) -> None:
    """norm, sum and projection on fixed signs (see make_fixture_la.tensor_stats), each
    within rel * norm + floor: the sum and the projection may cancel to about 0, so
    they are compared on the scale of the norm."""
    t = t.detach().double().cpu().flatten()
    got = [float(t.norm()), float(t.sum()), float(t @ signs(t.numel(), salt))]
    for label, a, b in zip(("norm", "sum", "projection"), got, want):
        assert abs(a - b) <= rel * want[0] + floor, f"{what}: {label} {a} vs official {b}"


def biases_under_batchnorm(model: torch.nn.Module) -> dict[str, str]:
    """{bias name: weight name} of every convolution whose output goes straight into a
    BatchNorm. BatchNorm subtracts the batch mean, so such a bias cancels out of the loss:
    its gradient is 0 in exact arithmetic, and what is computed (and recorded) is rounding
    noise whose size depends on the thread count and the CPU."""
    out = {}
    for prefix, seq in model.named_modules():
        if isinstance(seq, torch.nn.Sequential):
            layers = list(seq.named_children())
            for (name, layer), (_, after) in zip(layers, layers[1:]):
                if isinstance(layer, torch.nn.modules.conv._ConvNd) and layer.bias is not None \
                        and isinstance(after, torch.nn.modules.batchnorm._BatchNorm):
                    out[f"{prefix}.{name}.bias"] = f"{prefix}.{name}.weight"
    return out


def test_official_la_step_replays_gradients_and_batchnorm_statistics(fx, replayed):
    _, model, _ = replayed
    params = dict(model.named_parameters())
    assert list(params) == list(fx["grad_stats"])  # same parameters, same order
    noise_only = biases_under_batchnorm(model)
    assert len(noise_only) == 29  # every convolution of the VNet but the output one
    for i, (name, want) in enumerate(fx["grad_stats"].items()):
        if name in noise_only:
            # Zero in exact arithmetic: negligible against the same layer's weight
            # gradient, here and in the official run, not equal to the official noise.
            scale = fx["grad_stats"][noise_only[name]][0]
            assert want[0] <= 1e-4 * scale, f"official grad {name} is not rounding noise"
            assert params[name].grad.norm().item() <= 1e-4 * scale, f"grad {name} is not negligible"
            continue
        _stats_close(params[name].grad, want, 10_000 + i, 1e-4, 1e-7, f"grad {name}")
        if name in fx["full"]:
            torch.testing.assert_close(params[name].grad.cpu(), fx["full"][name]["grad"], rtol=1e-4, atol=2e-7,
                                       msg=lambda m: f"grad {name}: {m}")
    # The source pass runs in train mode, so it moves the running statistics too.
    state = model.state_dict()
    for name, value in fx["buffers"].items():
        torch.testing.assert_close(state[name].cpu(), value, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_official_la_optimizer_step_matches(fx, replayed):
    """One step of our optimizer (the preset's AdamW, lr 1e-3, weight decay 1e-4) moves the
    parameters as the official AdamW did. Adam's first step is lr * g / (|g| + eps): where
    the gradient is at rounding level (conv biases under BatchNorm, whose exact gradient
    is 0) it is the sign of rounding noise, so elements with |g| < 1e-5 are not compared."""
    _, model, cfg = replayed
    assert (cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay) == ("adamw", 1e-3, 1e-4)
    model = official_model(fx, cfg).to(DEVICE)  # a fresh copy, with the replay's gradients
    for p, q in zip(model.parameters(), replayed[1].parameters()):
        p.grad = q.grad.detach().clone()
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = make_optimizer(cfg, model.parameters())
    hyper = fx["optimizer"]
    assert type(opt).__name__ == hyper["name"]
    assert opt.defaults["lr"] == hyper["lr"] == hyper["lr_used"]
    for k in ("weight_decay", "eps", "amsgrad"):
        assert opt.defaults[k] == hyper[k], k
    opt.step()
    for i, (name, p) in enumerate(model.named_parameters()):
        update = p.detach() - init[name]
        if name in fx["full"]:
            want = fx["full"][name]
            well_defined = want["grad"].abs() >= 1e-5
            # rtol: two float32 ulps; CPUs round one Adam update of a weight near 1.0 one ulp apart.
            torch.testing.assert_close(p.detach().cpu()[well_defined], want["after"][well_defined],
                                       rtol=2.4e-7, atol=1e-7, msg=lambda m: f"{name} after the step: {m}")
        else:
            _stats_close(update, fx["update_stats"][name], 20_000 + i, 2e-3, 0.0, f"update {name}")


def test_official_la_dice_on_small_maps(fx):
    """The preset's Dice (foreground only, smoothing 1e-5) equals the official dice_loss
    where the smoothing shows: no foreground among few kept voxels, one foreground voxel,
    nothing kept. (In the step's terms 1e-5 and 1e-4 differ by ~1e-8.)"""
    spec = plan_from(la_config()).dice
    for i, probe in enumerate(fx["dice_probes"]):
        ours = masked_dice_loss(probe["logits"].softmax(dim=1), probe["labels"].long(), probe["keep"], spec)
        assert ours.item() == pytest.approx(probe["loss"], abs=1e-6), f"probe {i}"


def test_official_la_thresholds():
    """Iteration 0 uses the command-line 0.75 itself; the official loop then sets
    (0.75 + 0.25 * sigmoid_rampup(iter_num, 17000)) * ln 2 from the finished step's
    counter (0), which iteration 1 uses."""
    cfg = la_config()
    assert conf_threshold(cfg, 0) == 0.75
    official_next = (0.75 + 0.25 * sigmoid_rampup(0, 17000)) * math.log(2)
    assert conf_threshold(cfg, 1) == pytest.approx(official_next, rel=1e-12)
    fx_ = torch.load(FIXTURE, weights_only=True)
    assert conf_threshold(cfg, 0) == fx_["conf_thresh"]
    assert conf_threshold(cfg, 1) == pytest.approx(fx_["next_conf_thresh"], rel=1e-12)


@pytest.mark.parametrize("mode", ["eval", "batch_stats", "train"])
def test_official_la_other_source_pass_modes_differ(fx, mode):
    """The other source-pass modes are named options, not the official step: they draw
    other dropout masks or give other teachers."""
    try:
        out, _, _ = replay(fx, la_config(f"pseudo.source_pass_mode={mode}"))
    except TapeMismatch:
        return
    assert any(out.terms[k] != pytest.approx(fx["terms"][k], abs=1e-5) for k in TERMS)
