"""BatchNorm statistics: the no-trace batch-statistics pass and precise-BN evaluation."""
import dataclasses
import numpy as np
import pytest
import torch
from torch import nn

from crossmatch_lite.batchnorm import batch_statistics, recompute_statistics
from crossmatch_lite.config import load_config
from crossmatch_lite.crossmatch_step import plan_from, source_teachers
from crossmatch_lite.train import Trainer
from crossmatch_lite.models.unet import UNet


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Dropout(0.5), nn.Conv2d(3, 2, 1))


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def test_batch_statistics_normalises_by_the_batch_and_leaves_no_trace():
    net = _net()
    net[1].running_mean.fill_(5.0)  # far from the data: using it would show
    before = _bn_state(net)
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad(), batch_statistics(net) as m:
        out1, out2 = m(x), m(x)
    assert torch.equal(out1, out2)  # dropout off
    h = net[0](x)
    mean, var = h.mean((0, 2, 3), keepdim=True), h.var((0, 2, 3), unbiased=False, keepdim=True)
    bn = net[1]
    expect = net[3]((h - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(out1, expect, rtol=1e-5, atol=1e-5)
    after = _bn_state(net)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training and net[1].momentum == 0.1


def test_recompute_statistics_is_the_plain_average_and_leaves_the_model_alone():
    net = _net()
    before = _bn_state(net)
    images = torch.randn(32, 1, 8, 8)
    fresh = recompute_statistics(net, images, batches=4, batch_size=8, seed=0)
    h = net[0](images).detach()
    # Equal-sized batches covering every image once: the cumulative average of the batch
    # means is the mean over all images.
    torch.testing.assert_close(fresh[1].running_mean, h.mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    assert not fresh.training
    assert all(torch.equal(before[k], v) for k, v in _bn_state(net).items())
    again = recompute_statistics(net, images, batches=3, batch_size=8, seed=0)
    third = recompute_statistics(net, images, batches=3, batch_size=8, seed=1)
    assert torch.equal(again[1].running_var, recompute_statistics(net, images, 3, 8, seed=0)[1].running_var)
    assert not torch.equal(again[1].running_var, third[1].running_var)


def test_recompute_statistics_cycles_through_a_small_image_set():
    net = _net()
    images = torch.randn(5, 1, 8, 8)
    fresh = recompute_statistics(net, images, batches=4, batch_size=4, seed=0)  # 16 draws from 5 images
    assert torch.isfinite(fresh[1].running_var).all() and fresh[1].num_batches_tracked.item() == 4


@pytest.mark.parametrize("mode", ["official", "eval", "batch_stats", "train"])
def test_source_pass_modes(mode):
    cfg = load_config("configs/crossmatch.yaml", [f"pseudo.source_pass_mode={mode}"])
    torch.manual_seed(0)
    model = UNet(1, 4, channels=[4, 8, 16, 32, 64])
    model.train()
    m_w, x = torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32)
    before = _bn_state(model)
    torch.manual_seed(1)
    t1 = source_teachers(model, m_w, x, dataclasses.replace(plan_from(cfg), source_pass_mode=mode))
    changed = any(not torch.equal(before[k], v) for k, v in _bn_state(model).items())
    assert model.training
    assert changed == (mode in ("train", "official"))  # only train-mode passes move the running statistics
    if mode == "official":
        # The stream teachers come from a pass that normalises x and m together: another
        # labeled batch changes them, but not the clean teacher, which sees m alone.
        other_x = torch.rand(3, 1, 32, 32)
        torch.manual_seed(1)
        t2 = source_teachers(model, m_w, other_x, dataclasses.replace(plan_from(cfg), source_pass_mode=mode))
        torch.testing.assert_close(t2["clean"].logits, t1["clean"].logits)
        assert not torch.allclose(t2["weak"].logits, t1["weak"].logits, atol=1e-4)
    if mode == "batch_stats":
        # Batch statistics: the clean teacher of one image depends on the rest of the batch.
        torch.manual_seed(1)
        solo = source_teachers(model, m_w[:1], x[:1], dataclasses.replace(plan_from(cfg), source_pass_mode=mode))["clean"].logits
        assert not torch.allclose(solo, t1["clean"].logits[:1], atol=1e-4)
    if mode == "eval":
        torch.manual_seed(1)
        solo = source_teachers(model, m_w[:1], x[:1], dataclasses.replace(plan_from(cfg), source_pass_mode=mode))["clean"].logits
        torch.testing.assert_close(solo, t1["clean"].logits[:1], rtol=1e-4, atol=1e-4)


TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false",
        "model.channels=[4,8,16,32,64]", "eval.distances=false"]


@pytest.mark.parametrize("preset,expect", [("supervised", "labeled"), ("crossmatch", "all")])
def test_precise_bn_uses_only_the_images_the_run_learns_from(tmp_path, monkeypatch, preset, expect):
    import crossmatch_lite.train as train_mod
    cfg = load_config(f"configs/{preset}.yaml", TINY)
    trainer = Trainer(cfg, tmp_path)
    seen = {}

    def spy(model, images, batches, batch_size, seed, autocast=None):
        seen["n"] = len(images)
        return model

    monkeypatch.setattr(train_mod, "recompute_statistics", spy)
    trainer.eval_model("precise")
    d = trainer.data
    assert seen["n"] == (len(d.labeled_idx) if expect == "labeled" else len(d.labeled_idx) + len(d.unlabeled_idx))
    assert trainer.eval_model("running") is trainer.model
    assert trainer.eval_model() is trainer.model  # eval.bn defaults to running, as the official code


def test_precise_bn_changes_evaluation_only(tmp_path):
    """Evaluating with recomputed statistics leaves the trained weights and running statistics alone."""
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=3", "train.val_every=3"])
    trainer = Trainer(cfg, tmp_path)
    for _ in range(3):
        trainer.train_step()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with_pbn = trainer.evaluate(trainer.data.val_cases, model=trainer.eval_model("precise"))["dice"]["mean"]
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    without = trainer.evaluate(trainer.data.val_cases, model=trainer.eval_model("running"))["dice"]["mean"]
    assert np.isfinite(with_pbn) and np.isfinite(without)
