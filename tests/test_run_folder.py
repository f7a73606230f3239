"""crossmatch_lite/run/folder.py: the run folder's guarantees on their own, without training.

RunFolder is what the trainer calls for its lock, identity checks, resumption, atomic
checkpoints and metrics; each test drives it with a tiny fake data set and a checkpoint
of a few numbers.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from crossmatch_lite.config import Config
from crossmatch_lite.run.folder import RunFolder, RunLocked, RunMismatch

SPLIT = {"labeled": ["p1"], "unlabeled": ["p2", "p3"], "val": ["p4"], "test": ["p5"]}


def fake_data(fill: float = 0.0, split=SPLIT):
    return SimpleNamespace(split=dict(split), train_images=np.full((3, 1, 4, 4), fill, np.float32),
                           train_labels=np.zeros((3, 4, 4), np.uint8))


def config(iterations: int = 6, eta: float | None = None) -> Config:
    cfg = Config()
    cfg.train.iterations = iterations
    if eta is not None:
        cfg.distill.eta = eta
    return cfg


def state(iteration: int) -> dict:
    return {"model": {"w": torch.full((2,), float(iteration))}, "iteration": iteration}


def test_a_new_folder_is_opened_with_its_config_and_split_written(tmp_path):
    folder = RunFolder(tmp_path / "run", config(), fake_data())
    with folder.locked():
        assert folder.begin("cpu") == (None, None)
    assert json.loads((tmp_path / "run" / "split.json").read_text()) == SPLIT
    assert "iterations: 6" in (tmp_path / "run" / "config.yaml").read_text()
    assert folder.iteration_saved == 0


def test_another_config_or_split_in_the_folder_is_refused_naming_what_differs(tmp_path):
    RunFolder(tmp_path, config(), fake_data()).begin("cpu")
    with pytest.raises(RunMismatch, match="distill.eta"):
        RunFolder(tmp_path, config(eta=0.7), fake_data()).begin("cpu")
    with pytest.raises(RunMismatch, match="lists val differ"):
        RunFolder(tmp_path, config(), fake_data(split={**SPLIT, "val": ["p9"]})).begin("cpu")
    # Keys that may change between a run and its resumption are not its identity.
    cfg = config()
    cfg.train.threads, cfg.train.max_minutes = 1, 5.0
    assert RunFolder(tmp_path, cfg, fake_data()).begin("cpu") == (None, None)


def test_resume_returns_the_checkpoint_and_cuts_metrics_back_to_it(tmp_path):
    folder = RunFolder(tmp_path, config(), fake_data())
    folder.begin("cpu")
    with folder.metrics() as log:
        for it in range(1, 6):
            log({"iteration": it, "loss": 1.0 / it})
            if it == 3:
                folder.save_latest(state(3))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 6, "lo')  # a row torn by a kill mid-write
    again = RunFolder(tmp_path, config(), fake_data())
    resumed, finished = again.begin("cpu")
    assert finished is None and resumed["iteration"] == 3 and again.iteration_saved == 3
    assert resumed["model"]["w"].tolist() == [3.0, 3.0]
    assert resumed["split"] == SPLIT and resumed["data_fingerprint"] == folder.fingerprint
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]


def test_other_training_data_under_the_same_config_and_split_is_refused(tmp_path):
    folder = RunFolder(tmp_path, config(), fake_data(0.0))
    folder.begin("cpu")
    folder.save_latest(state(2))
    with pytest.raises(RunMismatch, match="fingerprint"):
        RunFolder(tmp_path, config(), fake_data(0.5)).begin("cpu")


def test_a_finished_run_returns_its_summary_with_or_without_latest(tmp_path):
    folder = RunFolder(tmp_path, config(iterations=4), fake_data())
    folder.begin("cpu")
    folder.save_latest(state(4))
    folder.save_best({"w": torch.ones(2)}, 4, 0.8)
    folder.write_summary({"iterations": 4, "test": {"dice": {"mean": 0.75}}})
    resumed, finished = RunFolder(tmp_path, config(iterations=4), fake_data()).begin("cpu")
    assert resumed["iteration"] == 4 and finished["test"]["dice"]["mean"] == 0.75
    (tmp_path / "latest.pt").unlink()
    assert RunFolder(tmp_path, config(iterations=4), fake_data()).begin("cpu")[1]["iterations"] == 4
    # ... but a finished folder without latest.pt still refuses another run's data.
    with pytest.raises(RunMismatch, match="fingerprint"):
        RunFolder(tmp_path, config(iterations=4), fake_data(0.5)).begin("cpu")


def test_metrics_rows_reach_every_sink_and_the_file(tmp_path):
    seen = []
    folder = RunFolder(tmp_path, config(), fake_data())
    folder.begin("cpu")
    with folder.metrics(seen.append, None) as log:
        log({"iteration": 1, "loss": 0.5})
        # flushed at once: a reader (or a kill) sees every finished row
        assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"iteration": 1, "loss": 0.5}
    assert seen == [{"iteration": 1, "loss": 0.5}]


def test_the_divergence_message_names_the_last_checkpoint(tmp_path):
    folder = RunFolder(tmp_path, config(), fake_data())
    folder.begin("cpu")
    assert "no checkpoint was written" in str(folder.diverged("the loss became nan"))
    folder.save_latest(state(2))
    msg = str(folder.diverged("the loss became nan"))
    assert msg.startswith("the loss became nan. ") and "(iteration 2) is the last checkpoint" in msg
    assert "new --out" in msg


def test_a_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    folder = RunFolder(tmp_path, config(), fake_data())
    with folder.locked():
        with pytest.raises(RunLocked, match="in use by another training process"):
            with RunFolder(tmp_path, config(), fake_data()).locked():
                pass
    with RunFolder(tmp_path, config(), fake_data()).locked():  # released on leaving
        pass
