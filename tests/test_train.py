"""Training runs end to end: it learns, resumes exactly, stops cleanly on NaN, and
tells the user what to do when data are missing."""
import copy
import json

import numpy as np
import pytest
import torch

import crossmatch_lite.train as train_mod
from crossmatch_lite.__main__ import main
from crossmatch_lite.config import load_config, to_dict
from crossmatch_lite.crossmatch_step import StepOutput
from crossmatch_lite.data import Case, SegData, load_data
from crossmatch_lite.batchnorm import recompute_statistics
from crossmatch_lite.evaluate import evaluate_cases
from crossmatch_lite.train import RunMismatch, Trainer, TrainingDiverged, train

# One fixed thread: the exact-resume test compares weights bit for bit, and the default
# (threads following the free cores) may change the thread count, and with it the order of
# floating-point sums, when the machine's load changes.
TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false",
        "model.channels=[4,8,16,32,64]", "eval.distances=false", "train.log_every=1", "train.threads=1"]


@pytest.fixture(scope="module")
def toy_data():
    return load_data(load_config(None, TINY).data, seed=0)


def test_short_supervised_run_learns(tmp_path, toy_data):
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=150", "train.val_every=50",
                                                        "train.batch_size=8", "model.channels=[8,16,32,64,128]"])
    summary = train(cfg, tmp_path / "run", data=toy_data)
    dice = summary["test"]["dice"]["mean"]
    assert dice > 0.4, summary["test"]["dice"]  # an untrained net scores ~0.05-0.2
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert summary["best_iteration"] in (50, 100, 150)


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_resume_continues_exactly_where_it_stopped(tmp_path, toy_data, monkeypatch):
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=4", "train.val_every=2"])
    train(cfg, tmp_path / "straight", data=toy_data)

    real_step = Trainer.train_step
    calls = {"n": 0}

    def crashing_step(self):
        calls["n"] += 1
        if calls["n"] == 4:  # dies during iteration 4; the checkpoint holds iteration 2
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", data=toy_data)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert torch.load(tmp_path / "resumed" / "latest.pt", weights_only=True)["iteration"] == 2
    train(cfg, tmp_path / "resumed", data=toy_data)

    a, b = _weights(tmp_path / "straight" / "latest.pt"), _weights(tmp_path / "resumed" / "latest.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != "seconds"}
                       for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "straight") == strip(tmp_path / "resumed")


def test_resume_refuses_a_different_config(tmp_path, toy_data):
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=2", "train.val_every=2"])
    train(cfg, tmp_path / "run", data=toy_data)
    other = load_config("configs/crossmatch.yaml", TINY + ["train.iterations=2", "distill.eta=0.5"])
    with pytest.raises(RunMismatch, match="distill.eta"):
        train(other, tmp_path / "run", data=toy_data)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, toy_data, monkeypatch):
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=6", "train.val_every=2"])
    real = train_mod.crossmatch_step
    count = {"n": 0}

    def poisoned(*a, **k):
        count["n"] += 1
        out = real(*a, **k)
        if count["n"] == 3:
            return StepOutput(loss=out.loss * float("nan"), terms=out.terms)
        return out

    monkeypatch.setattr(train_mod, "crossmatch_step", poisoned)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg, tmp_path / "run", data=toy_data)
    assert "iteration 2" in str(e.value) and "latest.pt" in str(e.value)
    state = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_cli_train_and_evaluate(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--config", "configs/fixmatch.yaml", "--out", str(out)]
    for s in TINY + ["train.iterations=2", "train.val_every=2", "eval.distances=true"]:
        args += ["--set", s]
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert 0.0 <= s["test"]["dice"]["mean"] <= 1.0 and "hd95_mm" in s["test"]
    # Both checkpoints under both BatchNorm evaluations; the headline is best.pt as selected.
    assert set(s["evaluations"]) == {"best_running", "best_precise", "latest_running", "latest_precise"}
    assert s["headline"] == "best_running" and s["test"] == s["evaluations"]["best_running"]["test"]
    assert all("hd95_mm_pen" in e["test"] and "n_empty" in e["test"] for e in s["evaluations"].values())
    assert s["evaluations"]["best_precise"]["test"] != s["evaluations"]["best_running"]["test"]
    assert (out / "config.yaml").exists() and (out / "split.json").exists()
    # A finished run re-run with the same folder returns at once with the same summary.
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["test"] == s["test"]
    assert main(["evaluate", "--run", str(out), "--split", "val"]) == 0
    for bn in ("running", "precise"):
        ev = json.loads((out / f"eval_val_best_{bn}.json").read_text())
        assert ev["dice"]["mean"] == pytest.approx(s["evaluations"][f"best_{bn}"]["val"]["dice"]["mean"])


def test_missing_acdc_data_names_path_and_download_command(tmp_path, capsys):
    code = main(["train", "--config", "configs/crossmatch.yaml", "--set", f"data.root={tmp_path}/nowhere",
                 "--set", "train.iterations=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{tmp_path}/nowhere" in err and "python -m data_download acdc" in err


def test_unknown_key_on_the_command_line_is_refused(tmp_path, capsys):
    code = main(["train", "--config", "configs/crossmatch.yaml", "--set", "distill.etaa=0.3",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "distill.eta" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compile_reaches_every_method_the_step_calls(toy_data):
    """torch.compile(module) compiles forward() only; the step mostly calls encode/decode."""
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.compile=true"])
    trainer = Trainer(cfg, "unused", data=toy_data)
    for name in ("forward", "encode", "decode"):
        compiled = getattr(trainer.step_model, name)
        assert getattr(compiled, "_torchdynamo_orig_callable", None) == getattr(trainer.model, name), name
    assert trainer.step_model.head is trainer.model.head  # anything else is the model's



class _ReadLog(list):
    """A case list that notes in `events` each time it is read."""

    def __init__(self, cases, name, events):
        super().__init__(cases)
        self.name, self.events = name, events

    def __iter__(self):
        self.events.append(self.name)
        return super().__iter__()


def _squares(n, seed, size=32):
    """n images (1, size, size) of a bright square on a dark noisy ground, and its mask."""
    g = np.random.default_rng(seed)
    images = g.uniform(0.0, 0.3, (n, 1, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        y0, x0 = g.integers(0, size // 2, 2)
        labels[i, y0:y0 + size // 3, x0:x0 + size // 3] = 1
    images[:, 0][labels == 1] += 0.6
    return images, labels


def _disagreeing_data(events, n_unlabeled=0):
    """A 2-class set whose test cases are the val images with the masks inverted: the
    better a checkpoint is on val, the worse it is on test. The last `n_unlabeled` of the
    16 training images are the unlabeled ones."""
    images, labels = _squares(16, seed=0)
    v_img, v_lab = _squares(4, seed=1)
    val = [Case(f"v{i}", v_img[2 * i:2 * i + 2], v_lab[2 * i:2 * i + 2], None) for i in range(2)]
    test = [Case(f"t{i}", c.image, 1 - c.label, None) for i, c in enumerate(val)]
    n = 16 - n_unlabeled
    split = {"dataset": "squares", "labeled": [f"s{i}" for i in range(n)],
             "unlabeled": [f"s{i}" for i in range(n, 16)], "val": ["v0", "v1"], "test": ["t0", "t1"]}
    return SegData("squares", 2, 1, ["background", "square"], images.astype(np.float16), labels,
                   np.arange(n), np.arange(n, 16), _ReadLog(val, "val", events), _ReadLog(test, "test", events),
                   split)


def test_checkpoint_is_chosen_on_val_and_test_is_scored_once_after_training(tmp_path):
    """best.pt is the validation with the highest val Dice, whatever test says; every
    logged val Dice is that of val; test is read only after the last validation, and the
    summary's val and test are those of best.pt."""
    events = []
    data = _disagreeing_data(events)
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=30", "train.val_every=6",
                                                        "train.batch_size=4", "train.lr=0.05"])
    snapshots = {}

    def on_log(row):
        if "val_dice" in row:
            events.append("logged")
            snapshots[row["iteration"]] = copy.deepcopy(trainer.model.state_dict())

    trainer = Trainer(cfg, tmp_path / "run", data=data, on_log=on_log)
    summary = trainer.run()
    last_log = len(events) - events[::-1].index("logged")
    assert "test" in events[last_log:] and "test" not in events[:last_log]

    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows_by_it = {r["iteration"]: r for r in rows if "val_dice" in r}
    logged = {it: r["val_dice"] for it, r in rows_by_it.items()}
    assert sorted(logged) == sorted(snapshots) == [6, 12, 18, 24, 30]
    assert all("val_dice_square" in r and "val_dice_mean" not in r for r in rows if "val_dice" in r)
    val, test = {}, {}
    for it, weights in snapshots.items():
        trainer.model.load_state_dict(weights)
        test[it] = trainer.evaluate(data.test_cases, model=trainer.model)["dice"]["mean"]
        scores = trainer.evaluate(data.val_cases, model=trainer.model)["dice"]
        val[it] = scores["mean"]
        assert logged[it] == pytest.approx(val[it], abs=1e-9), it
        assert rows_by_it[it]["val_dice_square"] == pytest.approx(scores["square"], abs=1e-9)
    best_val, best_test = max(val, key=val.get), max(test, key=test.get)
    assert best_val != best_test, (val, test)  # val and test really disagree
    assert summary["best_iteration"] == best_val
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["iteration"] == best_val and best["val_dice"] == pytest.approx(val[best_val], abs=1e-9)
    assert best["config"] == to_dict(cfg) and best["data_fingerprint"] == trainer.folder.fingerprint
    assert all(torch.equal(best["model"][k], v) for k, v in snapshots[best_val].items())
    assert summary["val"]["dice"]["mean"] == pytest.approx(val[best_val], abs=1e-9)
    assert summary["test"]["dice"]["mean"] == pytest.approx(test[best_val], abs=1e-9)


@pytest.mark.parametrize("pictured", [frozenset(), frozenset({"v1"})])
def test_each_validation_hands_the_board_the_predictions_it_pictures(tmp_path, monkeypatch, pictured):
    """A board pictures the val cases its picture_ids name: each validation keeps exactly
    their predictions and hands them over with its iteration; a board that names none is
    handed an empty dict, never None."""
    handed = []

    class Recording(train_mod.NoBoard):
        picture_ids = pictured

        def pictures(self, predictions, step):
            handed.append((step, {k: np.asarray(v).shape for k, v in predictions.items()}))

    monkeypatch.setattr(train_mod, "open_board", lambda *a, **k: Recording())
    data = _disagreeing_data([])
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=4", "train.val_every=2",
                                                        "train.batch_size=4"])
    train(cfg, tmp_path / "run", data=data)
    shapes = {c.id: c.label.shape for c in data.val_cases if c.id in pictured}
    assert handed == [(2, shapes), (4, shapes)]


def test_a_validation_that_only_ties_keeps_the_earlier_best(tmp_path):
    """With no square in any val label, every validation scores a val Dice of 0: the first
    one chose best.pt, and the later ties do not replace it."""
    data = _disagreeing_data([])
    for c in data.val_cases:
        c.label[:] = 0
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=6", "train.val_every=2",
                                                        "train.batch_size=4"])
    summary = train(cfg, tmp_path / "run", data=data)
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_dice"] for r in rows if "val_dice" in r] == [0.0, 0.0, 0.0]
    assert summary["best_iteration"] == 2
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["iteration"] == 2


# ---------------------------------------------------------------- the final evaluation
# bf16 autocast (emulated on CPUs without it) so that a score computed without the run's
# autocast differs from the run's own.
FINISH = TINY + ["train.amp=bf16", "train.batch_size=4", "eval.precise_bn_batches=3",
                 "eval.precise_bn_batch_size=4"]


def _scores_by_hand(trainer, weights, bn, cases, distances):
    """What the final evaluation must give for `weights` under `bn` statistics: the model
    with those weights (precise: BatchNorm statistics recomputed on the images the run
    learns from, seeded by train.seed), scored by evaluate_cases with the run's autocast."""
    cfg, d = trainer.cfg, trainer.data
    model = copy.deepcopy(trainer.model)
    model.load_state_dict(weights)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    if bn == "precise":
        idx = np.concatenate([d.labeled_idx, d.unlabeled_idx]) if trainer.plan.unlabeled else d.labeled_idx
        model = recompute_statistics(model, torch.from_numpy(d.train_images[idx]), cfg.eval.precise_bn_batches,
                                     cfg.eval.precise_bn_batch_size, seed=cfg.train.seed, autocast=bf16())
    return evaluate_cases(model, cases, d.num_classes, d.class_names, cfg.data.size, torch.device("cpu"),
                          distances=distances, batch=cfg.eval.batch_slices, autocast=bf16())


def _spy_evaluations(monkeypatch):
    """The (case ids, distances) of every evaluate_cases call the trainer makes."""
    calls, real = [], train_mod.evaluate_cases

    def spy(model, cases, *args, distances=True, **kwargs):
        calls.append(([c.id for c in cases], distances))
        return real(model, cases, *args, distances=distances, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate_cases", spy)
    return calls


def _assert_written(trainer, summary):
    written = json.loads((trainer.out / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))


def test_finish_scores_best_and_latest_under_both_statistics_and_headlines_best(tmp_path, monkeypatch):
    """best.pt (iteration 3: the later validation only ties) and the latest weights
    (iteration 6) are each scored on val (no distances) and on test (eval.distances) with
    running and with precise statistics; the headline is best.pt under eval.bn."""
    data = _disagreeing_data([], n_unlabeled=8)
    for c in data.val_cases:
        c.label[:] = 0  # every validation scores 0: the first one stays best
    cfg = load_config("configs/supervised.yaml", FINISH + ["train.iterations=6", "train.val_every=3",
                                                          "train.lr=0.05", "eval.distances=true"])
    trainer = Trainer(cfg, tmp_path / "run", data=data)
    calls = _spy_evaluations(monkeypatch)
    summary = trainer.run()
    assert summary["best_iteration"] == 3 and summary["iterations"] == 6
    final = calls[2:]  # after the two validations
    assert calls[:2] == [(["v0", "v1"], False)] * 2
    assert final == [(["v0", "v1"], False), (["t0", "t1"], True)] * 4
    ev = summary["evaluations"]
    assert set(ev) == {"best_running", "best_precise", "latest_running", "latest_precise"}
    weights = {"best": torch.load(trainer.folder.best)["model"], "latest": torch.load(trainer.folder.latest)["model"]}
    for which, w in weights.items():
        for bn in ("running", "precise"):
            assert ev[f"{which}_{bn}"]["val"] == _scores_by_hand(trainer, w, bn, data.val_cases, False), (which, bn)
            assert ev[f"{which}_{bn}"]["test"] == _scores_by_hand(trainer, w, bn, data.test_cases, True), (which, bn)
    assert ev["best_running"]["test"] != ev["latest_running"]["test"]
    assert ev["best_precise"]["test"] != ev["best_running"]["test"]
    assert summary["headline"] == "best_running"
    assert summary["val"] == ev["best_running"]["val"] and summary["test"] == ev["best_running"]["test"]
    _assert_written(trainer, summary)


def test_finish_scores_the_weights_of_the_last_validation_once(tmp_path, monkeypatch):
    """When best.pt is the last iteration's weights, latest is not evaluated again: its
    entries are best's. The headline follows eval.bn=precise."""
    data = _disagreeing_data([], n_unlabeled=8)
    cfg = load_config("configs/supervised.yaml", FINISH + ["train.iterations=2", "train.val_every=2",
                                                          "eval.distances=false", "eval.bn=precise"])
    trainer = Trainer(cfg, tmp_path / "run", data=data)
    calls = _spy_evaluations(monkeypatch)
    summary = trainer.run()
    assert summary["best_iteration"] == summary["iterations"] == 2
    assert calls == [(["v0", "v1"], False)] + [(["v0", "v1"], False), (["t0", "t1"], False)] * 2
    ev = summary["evaluations"]
    best = torch.load(trainer.folder.best)["model"]
    for bn in ("running", "precise"):
        assert ev[f"best_{bn}"]["test"] == _scores_by_hand(trainer, best, bn, data.test_cases, False), bn
        assert ev[f"latest_{bn}"] == ev[f"best_{bn}"], bn
    assert summary["headline"] == "best_precise"
    assert summary["val"] == ev["best_precise"]["val"] and summary["test"] == ev["best_precise"]["test"]
    _assert_written(trainer, summary)


def test_finish_without_best_pt_headlines_the_latest_weights(tmp_path):
    """A trainer stepped by hand (a notebook) has no validation and so no best.pt: finish
    scores the latest weights, headlines them and leaves them in the model."""
    data = _disagreeing_data([], n_unlabeled=8)
    cfg = load_config("configs/supervised.yaml", FINISH + ["eval.distances=false"])
    trainer = Trainer(cfg, tmp_path / "run", data=data)
    trainer.train_step()
    trainer.train_step()
    latest = copy.deepcopy(trainer.model.state_dict())
    summary = trainer.finish()
    ev = summary["evaluations"]
    assert summary["headline"] == "latest_running" and set(ev) == {"latest_running", "latest_precise"}
    for bn in ("running", "precise"):
        assert ev[f"latest_{bn}"]["val"] == _scores_by_hand(trainer, latest, bn, data.val_cases, False), bn
    assert summary["test"] == ev["latest_running"]["test"] and summary["val"] == ev["latest_running"]["val"]
    assert all(torch.equal(v, latest[k]) for k, v in trainer.model.state_dict().items())
    _assert_written(trainer, summary)


@pytest.mark.parametrize("preset", ["supervised", "crossmatch"])
def test_precise_statistics_are_recomputed_on_the_images_the_run_learns_from(tmp_path, preset):
    """eval_model("precise"): a copy whose BatchNorm statistics are recompute_statistics' on
    the labeled images (supervised) or the labeled and unlabeled ones (crossmatch), with
    eval.precise_bn_*, train.seed and the run's autocast; "running" is the model itself."""
    data = _disagreeing_data([], n_unlabeled=8)
    trainer = Trainer(load_config(f"configs/{preset}.yaml", FINISH), tmp_path / "run", data=data)
    trainer.train_step()
    got = trainer.eval_model("precise")
    want = copy.deepcopy(trainer.model)
    idx = np.arange(16) if preset == "crossmatch" else np.arange(8)
    e = trainer.cfg.eval
    want = recompute_statistics(want, torch.from_numpy(data.train_images[idx]), e.precise_bn_batches,
                                e.precise_bn_batch_size, seed=trainer.cfg.train.seed,
                                autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    assert got is not trainer.model
    got_bn, want_bn = got.state_dict(), want.state_dict()
    assert all(torch.equal(got_bn[k], v) for k, v in want_bn.items())
    assert any(not torch.equal(got_bn[k], v) for k, v in trainer.model.state_dict().items() if "running" in k)
    assert trainer.eval_model("running") is trainer.model and trainer.eval_model() is trainer.model


def test_3d_evaluation_slides_the_run_s_window_over_each_case(tmp_path):
    """A 3D run scores its cases through the sliding window of its patch, eval.stride and
    data.downsample: the same predictions as evaluate_cases handed that window."""
    cfg = load_config("configs/toy_la.yaml", ["train.threads=1", "train.progress=false", "train.amp=off",
                                              "model.channels=[2,4,8,16,32]", "eval.stride=[8,8,4]"])
    trainer = Trainer(cfg, tmp_path / "run")
    cases, d = trainer.data.val_cases[:1], trainer.data
    got = trainer.evaluate(cases, keep_predictions=True)
    window = {"patch": (32, 32, 16), "stride": (8, 8, 4), "downsample": d.downsample}
    want = evaluate_cases(trainer.model, cases, d.num_classes, d.class_names, cfg.data.size, torch.device("cpu"),
                          distances=False, keep_predictions=True, window=window)
    assert np.array_equal(got["_predictions"][cases[0].id], want["_predictions"][cases[0].id])
    assert got["dice"] == want["dice"] and got["cases"] == want["cases"]
