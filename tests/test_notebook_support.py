"""The package pieces the notebooks and the ablation report share: one load_model, one
batch builder that train_step itself uses, predictions through the evaluation path,
figure files written atomically, mid-ventricle slice picks, and notebook 07's idea."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crossmatch_lite.config import load_config, save_config
from crossmatch_lite.data import load_data
from crossmatch_lite.train import Trainer, train

TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false",
        "model.channels=[4,8,16,32,64]", "eval.distances=false", "train.log_every=1",
        "eval.precise_bn_batches=2", "eval.precise_bn_batch_size=4"]


@pytest.fixture(scope="module")
def toy_data():
    return load_data(load_config(None, TINY).data, seed=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, toy_data):
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=4", "train.val_every=2"])
    run = tmp_path_factory.mktemp("run")
    return run, train(cfg, run, data=toy_data)


def test_load_model_rebuilds_the_network_from_the_weights(tmp_path):
    from crossmatch_lite.run.checkpoints import CheckpointError, load_model
    from crossmatch_lite.run.files import atomic_torch_save
    from crossmatch_lite.models import build_model

    cfg = load_config("configs/crossmatch.yaml", ["model.channels=[4,8,16,32,64]"])
    net = build_model(cfg.model, in_channels=3, num_classes=2)
    save_config(cfg, tmp_path / "config.yaml")
    atomic_torch_save({"model": net.state_dict(), "iteration": 1}, tmp_path / "best.pt")
    model = load_model(tmp_path)
    assert not model.training and model.inc[0].weight.shape[1] == 3 and model.head.weight.shape[0] == 2
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="latest.pt"):
        load_model(tmp_path, "latest")
    with pytest.raises(ValueError, match="best"):
        load_model(tmp_path, "worst")


def test_train_step_feeds_on_next_batch(toy_data):
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=4"])
    seen = {}
    a = Trainer(cfg, "unused", data=toy_data)
    real = a.step_loss

    def record(x, y, views, thresh):
        seen.update(x=x.clone(), y=y.clone(), strong=[s.clone() for s in views.strong])
        return real(x, y, views, thresh)

    a.step_loss = record
    a.train_step()
    x, y, views = Trainer(cfg, "unused", data=toy_data).next_batch()
    assert torch.equal(seen["x"], x) and torch.equal(seen["y"], y)
    assert all(torch.equal(s, t) for s, t in zip(seen["strong"], views.strong))
    moved = views.to("cpu")
    assert moved is not views and torch.equal(moved.u_w, views.u_w) and len(moved.boxes) == len(views.boxes)


def test_predictions_come_from_the_evaluation_path(finished_run, toy_data):
    """The pictures of a run score exactly what its summary says (BatchNorm recomputed)."""
    from crossmatch_lite.predict import predict_cases
    from crossmatch_lite.train import Trainer

    run, summary = finished_run
    preds, scores = predict_cases(Trainer.from_run(run, data=toy_data), toy_data.test_cases)
    expected = {c["id"]: np.nanmean([v for v in c["dice"].values() if v is not None]) for c in summary["test"]["cases"]}
    assert set(preds) == set(expected)
    for cid, v in expected.items():
        assert scores[cid] == pytest.approx(v, abs=1e-6), cid


def test_save_figure_writes_png_and_svg_atomically(tmp_path):
    from crossmatch_lite.tutorial import figures

    fig, axes = figures.new_figure()
    axes[0][0].plot([0, 1], [1, 0])
    paths = figures.save_figure(fig, tmp_path / "figs", "line")
    assert [p.name for p in paths] == ["line.png", "line.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:400]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["line.png", "line.svg"]  # no temporaries


def test_pick_slices_takes_the_middle_of_the_heart(toy_data):
    from crossmatch_lite.tutorial.figures import pick_slices

    for i, z in pick_slices(toy_data.test_cases, 3):
        fg = np.flatnonzero((toy_data.test_cases[i].label > 0).reshape(len(toy_data.test_cases[i].label), -1).any(1))
        assert z == fg[len(fg) // 2] and 0 < z < len(toy_data.test_cases[i].label) - 1


def test_prediction_panels_name_slices_of_stacks_but_not_of_photographs(toy_data):
    from crossmatch_lite.tutorial.figures import pick_slices, plot_predictions

    isic = load_data(load_config(None, ["data.name=toy_isic", "data.size=32"]).data, seed=0)
    for data, pattern in ((toy_data, ", slice "), (isic, None)):
        cases = data.test_cases[:2]
        picks = pick_slices(cases, 2)
        fig = plot_predictions(cases, {"m": {c.id: np.asarray(c.label) for c in cases}}, picks, data.class_names)
        first = [fig.axes[3 * r].get_title() for r in range(2)]
        if pattern:
            assert all(pattern in t for t in first), first
        else:
            assert first == [c.id for c in cases]  # one photograph per case: "slice 0" says nothing


def test_the_idea_adds_one_logged_term(tmp_path, toy_data):
    from crossmatch_lite.tutorial.ideas import IdeaTrainer

    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=2", "train.val_every=2"])
    trainer = IdeaTrainer(cfg, tmp_path / "idea", idea={"name": "flip", "weight": 0.5}, data=toy_data)
    trainer.run()
    rows = [json.loads(ln) for ln in (tmp_path / "idea" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["idea"]) for r in rows if "loss" in r) and any("idea" in r for r in rows)
    plain = IdeaTrainer(cfg, tmp_path / "plain", idea=None, data=toy_data)
    assert plain.idea is None and "idea" not in plain.train_step()


def test_teacher_panels_show_the_kept_share_and_name_the_ignored_colour():
    from crossmatch_lite.tutorial.figures import teacher_panels

    images = torch.zeros(2, 1, 4, 4)
    labels = torch.ones(2, 4, 4, dtype=torch.long)
    conf = torch.tensor([0.2, 0.6, 0.96, 0.99]).repeat(2, 4, 1)  # per row: 4 columns of confidences
    fig = teacher_panels(images, labels, labels, conf, [0.5, 0.95], ["bg", "RV"], "t")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:5] == ["true mask (hidden)", "pseudo-label", "confidence", "c ≥ 0.5: 75 % kept",
                          "c ≥ 0.95: 50 % kept"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["RV", "ignored (below the threshold)"]
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2  # one colour bar per confidence panel


def test_terms_of_two_modes_get_their_own_axes():
    from crossmatch_lite.tutorial.figures import plot_terms

    terms = {"hard": {"x": 0.5, "kd": 0.4}, "soft": {"x": 0.5, "kd": 0.004}}
    shared = plot_terms(terms)
    assert len(shared.axes) == 1 and shared.axes[0].get_xlabel() == "loss value"
    own = plot_terms(terms, xlabels={"hard": "Dice", "soft": "KL"})
    assert [ax.get_xlabel() for ax in own.axes] == ["Dice", "KL"]
    widths = [sorted(p.get_width() for p in ax.patches) for ax in own.axes]
    assert widths[0] == pytest.approx([0.4, 0.5]) and widths[1] == pytest.approx([0.004, 0.5])  # each its own run
