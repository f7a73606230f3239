"""TensorBoard event files and the train.max_minutes time limit.

The event files are read back with TensorBoard's own reader (EventAccumulator), so what is
checked is what `tensorboard --logdir` shows: every number of metrics.jsonl at its
iteration, the val pictures, one curve across a resume, nothing at all with the key off.
"""
import json
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

import crossmatch_lite.run.tensorboard as tb
from ablations.grid import expand
from ablations.runner import prepare_cells
from crossmatch_lite.config import load_config
from crossmatch_lite.data import Case, load_data
from crossmatch_lite.train import Trainer, train
from killing import train_until_killed_at

TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false", "train.threads=1",
        "model.channels=[4,8,16,32,64]", "eval.distances=false", "train.log_every=1",
        "train.iterations=4", "train.val_every=2"]


@pytest.fixture(scope="module")
def toy_data():
    return load_data(load_config(None, TINY).data, seed=0)


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})  # 0: keep every point
    acc.Reload()
    return acc


def rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_curves_are_the_metrics(run_dir) -> None:
    """Every number of every metrics.jsonl row is a point of its curve, at its iteration,
    with its value (as float32, the precision of a TensorBoard scalar), and nothing else is."""
    acc = events(run_dir)
    expected: dict[str, dict[int, float]] = {}
    for row in rows(run_dir):
        for key, value in row.items():
            if key != "iteration" and value is not None:
                expected.setdefault(tb.tag_of(key), {})[row["iteration"]] = value
    assert set(acc.Tags()["scalars"]) == set(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == sorted(points), tag
        assert all(np.float32(v) == np.float32(points[s]) for s, v in got), tag


def test_events_hold_every_logged_number_and_the_val_pictures(tmp_path, toy_data):
    cfg = load_config("configs/crossmatch.yaml", TINY)
    train(cfg, tmp_path / "run", data=toy_data)
    assert_curves_are_the_metrics(tmp_path / "run")
    acc = events(tmp_path / "run")
    terms = {"train/loss", "train/x", "train/s1", "train/s2", "train/kd", "train/lr", "train/conf_thresh",
             "train/mask_ratio", "val/dice", "val/dice_RV", "val/dice_Myo", "val/dice_LV"}
    assert terms <= set(acc.Tags()["scalars"])
    pictures = acc.Images("val/predictions")
    assert [p.step for p in pictures] == [2, 4]
    frame = tb.TILE + 2
    assert all((p.width, p.height) == (3 * frame, tb.PICTURES * frame) for p in pictures)


def test_a_resumed_run_continues_the_same_curves(tmp_path, toy_data, monkeypatch):
    cfg = load_config("configs/crossmatch.yaml", TINY)
    # Dies during iteration 4: iteration 3 is in the events, not in latest.pt.
    train_until_killed_at(cfg, tmp_path / "run", toy_data, monkeypatch, 4)
    assert 3 in [e.step for e in events(tmp_path / "run").Scalars("train/loss")]
    # TensorBoard reads event files in name order, and a name starts with the second the
    # file was opened; a real resume is a later process, this one must wait for the next second.
    time.sleep(1.1)
    train(cfg, tmp_path / "run", data=toy_data)
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 2
    assert_curves_are_the_metrics(tmp_path / "run")  # one point per iteration: 3 purged, then logged again
    assert [p.step for p in events(tmp_path / "run").Images("val/predictions")] == [2, 4]


def test_off_writes_no_events_imports_nothing_and_renders_nothing(tmp_path, toy_data, monkeypatch):
    # MONAI itself imports TensorBoard when it is installed, so sys.modules cannot tell; instead
    # an import of it, or a picture, would fail this run.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setattr(tb, "render_row", lambda *a: pytest.fail("a picture was rendered with the board off"))
    kept = []
    real_evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, cases, **k: kept.append(k.get("keep_predictions"))
                        or real_evaluate(self, cases, **k))
    cfg = load_config("configs/crossmatch.yaml", TINY + ["train.tensorboard=false"])
    summary = train(cfg, tmp_path / "run", data=toy_data)
    assert summary["iterations"] == 4
    assert not list((tmp_path / "run").glob("*tfevents*"))
    assert not any(kept)  # no val prediction held for pictures


def test_pictures_of_3d_cases_show_the_middle_slice():
    rng = np.random.default_rng(0)
    cases = [Case(f"v{i}", rng.random((1, 20, 16, 12), dtype=np.float32),
                  rng.integers(0, 2, (20, 16, 12), dtype=np.uint8), None) for i in range(5)]
    picks = tb.pick_slices(cases, tb.PICTURES, three_d=True)
    assert picks == [("v0", 6), ("v1", 6), ("v3", 6), ("v4", 6)]
    assert tb.pick_slices(cases[:1], 4, three_d=True) == [("v0", 2), ("v0", 4), ("v0", 7), ("v0", 9)]
    image, label, pred = tb.slice_of(cases[0], cases[0].label, 6, three_d=True)
    assert image.shape == (1, 20, 16) and np.array_equal(label, cases[0].label[..., 6])
    row = tb.render_row(image, label, pred)
    assert row.shape == (tb.TILE + 2, 3 * (tb.TILE + 2), 3) and row.dtype == np.uint8
    # ground truth and prediction are the same labels here: the same colours
    frame = tb.TILE + 2
    assert np.array_equal(row[:, frame:2 * frame], row[:, 2 * frame:])


def test_time_limit_stops_at_a_checkpoint_and_a_rerun_finishes_as_an_uninterrupted_run(tmp_path, toy_data):
    straight = load_config("configs/crossmatch.yaml", TINY)
    train(straight, tmp_path / "straight", data=toy_data)
    # A limit that has always passed: each call trains one iteration, then stops. Iterations
    # 1 and 3 are checkpointed by the time limit, 2 by its validation.
    limited = load_config("configs/crossmatch.yaml", TINY + ["train.max_minutes=1e-9"])
    run = tmp_path / "limited"
    for iteration in (1, 2, 3):
        summary = train(limited, run, data=toy_data)
        assert summary["stopped"] == "time limit" and summary["iterations"] == iteration
        assert torch.load(run / "latest.pt", weights_only=True)["iteration"] == iteration
        assert not (run / "summary.json").exists()  # no final evaluation: the run is not finished
    # The limit is no part of the run's identity: lifting it resumes the same run to its end.
    summary = train(straight, run, data=toy_data)
    assert "stopped" not in summary and summary["iterations"] == 4 and (run / "summary.json").exists()
    for name in ("latest.pt", "best.pt"):
        a = torch.load(tmp_path / "straight" / name, weights_only=True)["model"]
        b = torch.load(run / name, weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    strip = lambda d: [{k: v for k, v in r.items() if k != "seconds"} for r in rows(d)]
    assert strip(tmp_path / "straight") == strip(run)


def test_grid_folder_names_each_cell_for_tensorboard(tmp_path):
    spec = {"name": "tiny", "base": "configs/crossmatch.yaml",
            "set": {"data.name": "toy_acdc", "data.size": 32, "train.iterations": 4},
            "axes": {"variant": {"supervised": {"distill.enabled": False}, "crossmatch": {}},
                     "seed": {"key": "train.seed", "values": [0, 1]}}}
    grid = expand(spec)
    prepare_cells(tmp_path, grid, threads=1)
    prepare_cells(tmp_path, grid, threads=1)  # again, as a resumed grid: the links stay
    links = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert links == ["variant=crossmatch,seed=0", "variant=crossmatch,seed=1",
                     "variant=supervised,seed=0", "variant=supervised,seed=1"]
    for cell in grid.cells:  # as the trainer writes them, into each cell's run folder
        board = tb.Board(tmp_path / "cells" / cell.id / "run", 1, [], three_d=False)
        board.scalars({"iteration": 1, "loss": 0.5})
        board.close()
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "tensorboard"))
    mux.Reload()
    assert sorted(mux.Runs()) == links
    assert all(events(tmp_path / "tensorboard" / name).Scalars("train/loss")[0].value == 0.5 for name in links)


def test_board_off_is_the_no_op_board(tmp_path):
    board = tb.open_board(False, tmp_path, 1, [SimpleNamespace(id="a")], three_d=False)
    assert type(board) is tb.NoBoard and not board.picture_ids
    board.scalars({"iteration": 1, "loss": 1.0})
    board.pictures({}, 1)
    board.close()
    assert not list(tmp_path.iterdir())
