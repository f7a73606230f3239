"""The fast training step against the plain reference, what each switch removes, and that
no gradient reaches a teacher in either distillation mode."""
import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from crossmatch_lite import crossmatch_step as step_module
from crossmatch_lite.views import UnlabeledViews, make_unlabeled_views
from crossmatch_lite.config import Config, flatten, load_config, to_dict
from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from
from crossmatch_lite.models.unet import UNet
from official.tape import keyed_dropout
from benchmarks.reference_step import gather_dice, reference_terms

B, S, THRESH = 3, 32, 0.3  # a low threshold so that the confidence masks keep and drop pixels


def make_inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 1, S, S, generator=g)
    y = torch.randint(0, 4, (B, S, S), generator=g)
    u = torch.rand(B, 1, S, S, generator=g)
    m = torch.rand(B, 1, S, S, generator=g)
    views = make_unlabeled_views(u, m, cfg.perturb.image, torch.Generator().manual_seed(seed + 1))
    return x, y, views


def run_step(cfg, seed=5):
    torch.manual_seed(0)
    model = UNet(1, 4, [8, 16, 32, 64, 128])
    x, y, views = make_inputs(cfg)
    torch.manual_seed(seed)
    return crossmatch_step(model, x, y, views, plan_from(cfg), THRESH), model, (x, y, views)


def full_cfg():
    cfg = Config()
    cfg.perturb.image.cutmix_p = 1.0  # every view gets a box, so the box mixing is exercised
    return cfg


def test_fast_step_equals_reference_formulation():
    cfg = full_cfg()
    torch.manual_seed(0)
    model = UNet(1, 4, [8, 16, 32, 64, 128])
    ref_model = copy.deepcopy(model)
    x, y, v = make_inputs(cfg)
    assert all(b.sum() > 0 for b in v.boxes)
    torch.manual_seed(5)
    out = crossmatch_step(model, x, y, v, plan_from(cfg), THRESH)
    torch.manual_seed(5)
    ref = reference_terms(ref_model, x, y, v.u_w, v.strong[0], v.strong[1], v.boxes[0], v.boxes[1], v.m_w,
                          thresh=THRESH, eta=cfg.distill.eta)
    for name, value in ref.items():
        if name == "loss":
            assert out.loss.item() == pytest.approx(value.item(), abs=1e-5)
        else:
            assert out.terms[name] == pytest.approx(value.item(), abs=1e-5), name
    assert 0.05 < out.mask_ratio < 0.95
    # Gradients flow only through students: the same loss gives the same gradients.
    out.loss.backward()
    ref["loss"].backward()
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)


def test_channels_last_step_equals_reference_formulation():
    """Channels-last (on by default on CUDA, proposed for CPU) only changes the memory layout:
    the fast step's loss terms still equal the five-call, gather-based reference."""
    cfg = Config()
    cfg.perturb.image.cutmix_p = 1.0
    b, s, thresh = 2, 32, 0.3
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(b, 1, s, s, generator=g), torch.randint(0, 4, (b, s, s), generator=g)
    u, m = torch.rand(b, 1, s, s, generator=g), torch.rand(b, 1, s, s, generator=g)
    v = make_unlabeled_views(u, m, cfg.perturb.image, torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    # Element-wise dropout draws its mask in memory order, so with the same seed a
    # channels-last tensor gets another mask: switch it off to compare the math alone
    # (Dropout2d's per-channel masks do not depend on the layout and stay on).
    ref_model = UNet(1, 4, [8, 16, 32, 64, 128], encoder_dropout=(0.0,) * 5)
    model = copy.deepcopy(ref_model).to(memory_format=torch.channels_last)
    cl = lambda t: t.contiguous(memory_format=torch.channels_last)  # noqa: E731
    v_cl = UnlabeledViews(u_w=cl(v.u_w), m_w=cl(v.m_w), strong=[cl(t) for t in v.strong], boxes=v.boxes)
    torch.manual_seed(5)
    out = crossmatch_step(model, cl(x), y, v_cl, plan_from(cfg), thresh)
    torch.manual_seed(5)
    ref = reference_terms(ref_model, x, y, v.u_w, v.strong[0], v.strong[1], v.boxes[0], v.boxes[1], v.m_w,
                          thresh=thresh, eta=cfg.distill.eta)
    assert out.loss.item() == pytest.approx(ref["loss"].item(), abs=1e-5)
    for name, value in ref.items():
        if name != "loss":
            assert out.terms[name] == pytest.approx(value.item(), abs=1e-5), name


def compose(cfg, t):
    """The loss from its reported terms, by the documented formula."""
    eta, lw = cfg.distill.eta, cfg.loss
    teach = [v for k, v in t.items() if k.startswith(("kd_w_", "kd_s_"))]
    cross = [v for k, v in t.items() if k.startswith("kd_cross_")]
    strong = [v for k, v in t.items() if k in ("s1", "s2")]
    loss = lw.supervised * t["x"]
    if strong:
        loss += lw.strong * sum(strong) / len(strong)
    kd = (1 - eta) * sum(teach) / len(teach) if teach else 0.0
    kd += eta * sum(cross) / len(cross) if cross else 0.0
    return (loss + lw.distill * kd) / lw.normalizer


ALL = {"x", "s1", "s2", "s", "kd", "kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong",
       "kd_cross_weak", "kd_cross_strong"}


@pytest.mark.parametrize("override, removed", [
    ([], set()),
    (["distill.cross_terms=false"], {"kd_cross_weak", "kd_cross_strong"}),
    (["distill.teacher_terms=false"], {"kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong"}),
    (["distill.enabled=false"], ALL - {"x", "s1", "s2", "s"}),
    (["perturb.feature.strong_rate=null"], {"kd_w_strong", "kd_s_strong", "kd_cross_strong"}),
    (["perturb.feature.on_strong_view=false"], {"kd_s_weak", "kd_s_strong", "kd_cross_weak", "kd_cross_strong"}),
    (["perturb.image.strong_views=1"], {"s2"}),
    (["perturb.image.enabled=false"], {"s1", "s2", "s", "kd_s_weak", "kd_s_strong", "kd_cross_weak", "kd_cross_strong"}),
    (["perturb.feature.enabled=false"], ALL - {"x", "s1", "s2", "s"}),
    (["distill.mode=soft", "distill.temperature=2.0"], set()),
    (["perturb.image.cutmix=false"], set()),  # strong views without boxes: every term stays
])
def test_each_switch_removes_exactly_its_terms(override, removed):
    cfg = load_config(None, ["perturb.image.cutmix_p=1.0"] + override)
    out, _, _ = run_step(cfg)
    expected = ALL - removed
    if "perturb.image.strong_views=1" in override:
        expected = (expected - {"s2"})
    assert set(out.terms) == expected
    assert out.loss.item() == pytest.approx(compose(cfg, out.terms), rel=1e-5)


@pytest.mark.parametrize("override, removed", [
    (["distill.cross_terms=false"], {"kd_cross_weak", "kd_cross_strong"}),
    (["distill.teacher_terms=false"], {"kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong"}),
])
def test_switching_distillation_terms_off_leaves_the_others_unchanged(override, removed):
    """These switches only drop terms: every term they keep has the value it has with all
    switches on (same students, same teachers, same boxes). Dropout masks are keyed on the
    input so that a skipped pass does not shift the masks of the others."""
    with keyed_dropout():
        full, _, _ = run_step(full_cfg())
        cfg = full_cfg()
        for o in override:
            cfg = load_config(None, ["perturb.image.cutmix_p=1.0", o])
        part, _, _ = run_step(cfg)
    kept = set(full.terms) - removed - {"kd"}
    assert set(part.terms) - {"kd"} == kept
    for k in kept:
        assert part.terms[k] == pytest.approx(full.terms[k], abs=1e-6), k


def test_soft_mode_changes_only_distillation_terms():
    hard, _, _ = run_step(full_cfg())
    cfg = full_cfg()
    cfg.distill.mode = "soft"
    soft, _, _ = run_step(cfg)
    for k in ("x", "s1", "s2"):
        assert soft.terms[k] == pytest.approx(hard.terms[k], abs=1e-6)
    assert soft.terms["kd_w_weak"] != pytest.approx(hard.terms["kd_w_weak"], abs=1e-3)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_teachers_carry_no_gradient(monkeypatch, mode):
    """A teacher is a target. In soft mode the KL term is differentiable in the teacher's
    logits, so a teacher left attached to the graph keeps every loss value (the only thing
    test_soft_mode_changes_only_distillation_terms compares) but adds a gradient through
    the teacher. The step's gradients must equal those of the same step with every teacher
    detached once more at the loss, and no teacher may hold a graph (in hard mode argmax and
    the threshold cut it anyway, but a teacher that keeps one is still a fault)."""
    cfg = full_cfg()
    cfg.distill.mode = mode
    cfg.distill.temperature = 2.0
    teachers = []

    class Recorded(step_module.Teacher):
        def __init__(self, logits):
            super().__init__(logits)
            teachers.append(self)

    monkeypatch.setattr(step_module, "Teacher", Recorded)
    out, model, _ = run_step(cfg)
    out.loss.backward()
    step_teachers = list(teachers)

    if mode == "soft":  # (hard mode has no KL term: re-detaching would change nothing)
        kl = step_module.masked_kl_loss
        calls = []

        def detached_kl(student, teacher, keep, temperature):
            calls.append(temperature)
            return kl(student, teacher.detach(), keep, temperature)

        monkeypatch.setattr(step_module, "masked_kl_loss", detached_kl)
        ref, ref_model, _ = run_step(cfg)
        ref.loss.backward()
        assert calls == [2.0] * 6  # the six distillation terms a..f
        assert out.loss.item() == ref.loss.item()
        for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-9, msg=lambda m: f"{name}: {m}")
    assert len(step_teachers) >= 3 and not any(t.logits.requires_grad for t in step_teachers)


@pytest.mark.parametrize("preset, override", [
    ("configs/supervised.yaml", []),
    # The cross terms need a strong view; without one, nothing is left to learn from u.
    ("configs/crossmatch.yaml", ["perturb.image.enabled=false", "distill.teacher_terms=false"]),
])
def test_supervised_preset_runs_one_forward_on_labeled_only(preset, override):
    cfg = load_config(preset, override)
    torch.manual_seed(0)
    model = UNet(1, 4, [8, 16, 32, 64, 128])
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    x, y, v = make_inputs(cfg)
    out = crossmatch_step(model, x, y, v, plan_from(cfg), THRESH)
    assert set(out.terms) == {"x"} and len(calls) == 1
    assert out.loss.item() == pytest.approx(cfg.loss.supervised * out.terms["x"] / cfg.loss.normalizer, rel=1e-6)


@pytest.mark.parametrize("mode, batches", [
    # official: m alone, then x with m (for BatchNorm), as the official code; then x with u_w, s1 with s2
    ("official", [B, 2 * B, 2 * B, 2 * B]),
    ("eval", [B, 2 * B, 2 * B]),  # the faster modes encode the source m once
    ("batch_stats", [B, 2 * B, 2 * B]),
])
def test_encoder_passes_per_source_pass_mode(mode, batches):
    cfg = full_cfg()
    cfg.pseudo.source_pass_mode = mode
    torch.manual_seed(0)
    model = UNet(1, 4, [8, 16, 32, 64, 128])
    seen = []
    model.inc.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    x, y, v = make_inputs(cfg)
    crossmatch_step(model, x, y, v, plan_from(cfg), THRESH)
    assert seen == batches


@pytest.mark.parametrize("override, batches", [
    # the source m is encoded only when a strong view takes a box from it
    (["perturb.image.cutmix=false"], [2 * B, 2 * B]),
    (["perturb.image.cutmix_source=in_batch"], [2 * B, 2 * B]),
    (["perturb.image.enabled=false"], [2 * B]),
    (["perturb.image.strong_views=1"], [B, 2 * B, 2 * B, B]),
])
def test_encoder_passes_per_image_perturbation(override, batches):
    cfg = load_config(None, ["perturb.image.cutmix_p=1.0"] + override)
    torch.manual_seed(0)
    model = UNet(1, 4, [8, 16, 32, 64, 128])
    seen = []
    model.inc.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    x, y, v = make_inputs(cfg)
    if "perturb.image.cutmix_source=in_batch" in override:
        v = dataclasses.replace(v, m_w=None)  # the training loop draws no second batch then
    crossmatch_step(model, x, y, v, plan_from(cfg), THRESH)
    assert seen == batches


def test_a_step_warns_nothing():
    # A warning here would repeat at every iteration of a run (an implicit softmax axis, say).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_step(full_cfg())
        cfg = full_cfg()
        cfg.distill.mode = "soft"
        run_step(cfg)


PRESET_DIFFS = {
    "supervised": {"preset", "perturb.image.enabled", "perturb.feature.enabled", "distill.enabled", "loss.normalizer"},
    "unimatch": {"preset", "perturb.feature.weak_rate", "perturb.feature.strong_rate",
                 "perturb.feature.on_strong_view", "distill.cross_terms", "distill.eta"},
    "fixmatch": {"preset", "perturb.image.strong_views", "perturb.feature.enabled", "distill.enabled", "loss.strong"},
}
CPU_BUDGET = {"data.size", "train.iterations", "train.batch_size", "train.val_every"}
PRESET_DIFFS["acdc_cpu"] = CPU_BUDGET
PRESET_DIFFS["acdc_cpu_precise_bn"] = CPU_BUDGET | {"preset", "eval.bn"}  # never named plain "crossmatch"
PRESET_DIFFS["acdc_cpu_supervised"] = CPU_BUDGET | PRESET_DIFFS["supervised"]
PRESET_DIFFS["isic_cpu"] = CPU_BUDGET | {"data.name", "data.root", "data.labeled"}
PRESET_DIFFS["isic_cpu_supervised"] = PRESET_DIFFS["isic_cpu"] | PRESET_DIFFS["supervised"]
PRESET_DIFFS["isic_cpu_fully_supervised"] = PRESET_DIFFS["isic_cpu_supervised"]


def test_crossmatch_preset_is_the_official_configuration():
    cfg = load_config("configs/crossmatch.yaml")
    assert flatten(to_dict(cfg)) == flatten(to_dict(Config()))
    assert (cfg.distill.eta, cfg.pseudo.conf_thresh, cfg.perturb.feature.weak_rate,
            cfg.perturb.feature.strong_rate, cfg.train.batch_size, cfg.data.size) == (0.3, 0.95, 0.25, 0.75, 12, 256)


@pytest.mark.parametrize("preset", sorted(PRESET_DIFFS))
def test_presets_differ_only_where_they_should(preset):
    base = flatten(to_dict(load_config("configs/crossmatch.yaml")))
    other = flatten(to_dict(load_config(f"configs/{preset}.yaml")))
    assert {k for k in base if base[k] != other[k]} == PRESET_DIFFS[preset]


def test_unimatch_preset_is_unimatch_loss():
    cfg = load_config("configs/unimatch.yaml", ["perturb.image.cutmix_p=1.0"])
    out, _, _ = run_step(cfg)
    assert set(out.terms) == {"x", "s1", "s2", "s", "kd", "kd_w_weak"}
    t = out.terms
    assert out.loss.item() == pytest.approx((t["x"] + 0.25 * t["s1"] + 0.25 * t["s2"] + 0.5 * t["kd_w_weak"]) / 2, rel=1e-5)


class PixelModel(torch.nn.Module):
    """Per-pixel logits (-4 f, 4 f) from the first channel f of the features: a pixel's
    confidence depends on that pixel alone (no BatchNorm), so the test can compute it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def encode(self, x):
        return [x * self.w]

    def decode(self, feats):
        f = feats[0][:, :1]
        return torch.cat([-4 * f, 4 * f], dim=1)

    def forward(self, x):
        return self.decode(self.encode(x))


def test_a_pixel_whose_confidence_equals_the_threshold_is_kept():
    """The official code keeps `conf >= thresh`. Half the pixels of u_w have confidence c
    exactly, the rest more; at threshold c every pixel is kept, exactly as just below c,
    and the terms differ from those just above c, where only half are kept."""
    cfg = full_cfg()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 1, S, S, generator=g)
    y = torch.randint(0, 2, (B, S, S), generator=g)
    u = torch.where(torch.rand(B, 1, S, S, generator=g) < 0.5, 0.25, 0.5)
    views = make_unlabeled_views(u, u.clone(), cfg.perturb.image, torch.Generator().manual_seed(1))
    model = PixelModel()
    with torch.no_grad():
        conf = model(views.u_w).softmax(dim=1).amax(dim=1)
    c = conf[u[:, 0] == 0.25].unique()
    assert c.numel() == 1 and 0.6 < c.item() < 0.99
    c32 = np.float32(c.item())
    below, above = float(np.nextafter(c32, np.float32(0))), float(np.nextafter(c32, np.float32(1)))

    def step(thresh):
        torch.manual_seed(5)
        return crossmatch_step(model, x, y, views, plan_from(cfg), thresh)

    at, lo, hi = step(c.item()), step(below), step(above)
    assert at.mask_ratio == lo.mask_ratio == 1.0
    assert hi.mask_ratio == pytest.approx((u == 0.5).float().mean().item())
    assert at.terms == lo.terms
    for k in ("s1", "s2", "kd_w_weak", "kd_s_weak"):  # strong views and distillation alike
        assert at.terms[k] != pytest.approx(hi.terms[k], abs=1e-5), k


def _foreground_dice(probs, labels, keep, smooth):
    """The LA Dice loss: class 1 alone, over the kept pixels."""
    p, y, k = probs[:, 1], (labels == 1).float(), keep.float()
    return 1 - (2 * (p * y * k).sum() + smooth) / ((p * p * k).sum() + (y * k).sum() + smooth)


@pytest.mark.parametrize("dice", ["official ACDC", "foreground, smoothing 1e-5"])
def test_in_batch_cutmix_takes_each_box_pseudo_label_from_the_previous_image(dice):
    """With no second batch the box of image i is pasted from image i - 1 (the batch rolled
    by one), in the strong view and so in its pseudo-label: inside the box, the teacher is
    the prediction of u_w[i - 1]. The per-pixel model makes that teacher computable. The
    strong-view terms use the configured Dice too."""
    la = ["loss.dice_background=false", "loss.dice_smooth=1e-5"] if dice.startswith("foreground") else []
    cfg = load_config(None, ["perturb.image.cutmix_p=1.0", "perturb.image.cutmix_source=in_batch"] + la)

    def score(probs, labels, keep):
        if la:
            return _foreground_dice(probs, labels, keep, 1e-5)
        return gather_dice(probs, labels, ignore=(~keep).float())

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(B, 1, S, S, generator=g), torch.randint(0, 2, (B, S, S), generator=g)
    u = torch.rand(B, 1, S, S, generator=g) * 2 - 1  # both classes, confidences on both sides of 0.9
    views = make_unlabeled_views(u, None, cfg.perturb.image, torch.Generator().manual_seed(1))
    assert all(b.sum() > 0 for b in views.boxes)
    model, thresh = PixelModel(), 0.9
    torch.manual_seed(5)
    out = crossmatch_step(model, x, y, views, plan_from(cfg), thresh)
    with torch.no_grad():
        p_w = model(u)
        previous = p_w[torch.arange(B) - 1]
        for i, (s, box) in enumerate(zip(views.strong, views.boxes)):
            teacher = torch.where(box.bool()[:, None], previous, p_w)
            keep = teacher.softmax(1).amax(1) >= thresh
            ref = score(model(s).softmax(1), teacher.argmax(1), keep)
            assert out.terms[f"s{i + 1}"] == pytest.approx(ref.item(), abs=1e-5)
            unboxed = score(model(s).softmax(1), p_w.argmax(1), p_w.softmax(1).amax(1) >= thresh)
            assert out.terms[f"s{i + 1}"] != pytest.approx(unboxed.item(), abs=1e-3)


@pytest.mark.parametrize("preset", ["configs/crossmatch.yaml", "configs/supervised.yaml"])
def test_the_labeled_loss_uses_the_configured_dice_classes_and_smoothing(preset):
    """The LA loss: foreground Dice alone, smoothing 1e-5, in the full and the supervised-only
    step. All pixels background and a foreground probability p = sigmoid(-8) everywhere:
    the foreground term is 1 - s / (N p^2 + s), where s decides the value (N p^2 is about 3e-4)."""
    cfg = load_config(preset, ["perturb.image.cutmix_p=1.0", "loss.dice_background=false", "loss.dice_smooth=1e-5"])
    x, y = -torch.ones(B, 1, S, S), torch.zeros(B, S, S, dtype=torch.long)
    _, _, views = make_inputs(cfg)
    torch.manual_seed(5)
    out = crossmatch_step(PixelModel(), x, y, views, plan_from(cfg), THRESH)
    logits = torch.cat([4 * torch.ones(B, 1, S, S), -4 * torch.ones(B, 1, S, S)], dim=1)
    p = torch.sigmoid(torch.tensor(-8.0, dtype=torch.float64)).item()
    foreground = 1 - 1e-5 / (B * S * S * p * p + 1e-5)
    ce = torch.nn.functional.cross_entropy(logits, y).item()
    assert out.terms["x"] == pytest.approx((ce + foreground) / 2, rel=1e-4)


def test_a_teacher_is_boxed_only_with_both_a_source_and_a_box():
    """Teacher.boxed: inside the box the source's logits, outside its own; without a source
    (no CutMix source drawn) or without a box (CutMix off) it is the teacher itself."""
    own, other = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    box = torch.zeros(2, 4, 4)
    box[:, 1:3, :2] = 1
    t, source = step_module.Teacher(own), step_module.Teacher(other)
    assert t.boxed(None, box) is t and t.boxed(source, None) is t
    pasted = t.boxed(source, box).logits
    assert torch.equal(pasted, box[:, None].expand_as(own))
