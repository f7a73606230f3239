"""Limits a hostile but fair user runs into: a diverged run stays recoverable, a checkpoint
of another network, hostile YAML and requests the machine cannot serve are each refused in
one line, and Ctrl-C in `train` says where to resume. Each test failed before its fix."""
import os
import shutil
import time

import pytest
import torch

from crossmatch_lite.__main__ import main
from crossmatch_lite.config import ConfigError, load_config
from crossmatch_lite.train import Trainer

TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false", "train.threads=1",
        "model.channels=[4,8,16,32,64]", "eval.distances=false", "eval.precise_bn_batches=0",
        "train.iterations=2", "train.val_every=2"]


def cli(*args, sets=()):
    argv = list(args)
    for s in [*TINY, *sets]:
        argv += ["--set", s]
    return main(argv)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, err
    return lines[0]


def all_finite(path) -> bool:
    state = torch.load(path, weights_only=True)
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_diverged_run_writes_nothing_non_finite_and_its_advice_works(tmp_path, capsys):
    out = tmp_path / "lr"
    assert cli("train", "--config", "configs/crossmatch.yaml", "--out", str(out),
               sets=["train.lr=1e9", "train.iterations=12", "train.val_every=1"]) == 2
    line = one_line_error(capsys)
    for name in ("latest.pt", "best.pt"):
        assert not (out / name).exists() or all_finite(out / name), name
    assert "new --out" in line
    if (out / "latest.pt").exists():  # the message names the checkpoint it left, truthfully
        it = torch.load(out / "latest.pt", weights_only=True)["iteration"]
        assert f"latest.pt (iteration {it})" in line
    else:
        assert "no checkpoint was written" in line
    # The advice: a lower lr in a new run folder trains.
    assert cli("train", "--config", "configs/crossmatch.yaml", "--out", str(tmp_path / "lower"),
               sets=["train.lr=0.01"]) == 0


def test_evaluate_with_a_checkpoint_of_another_network_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(run)) == 0
    other = tmp_path / "other"
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(other),
               sets=["model.channels=[8,8,16,32,64]"]) == 0
    capsys.readouterr()
    shutil.copy(other / "best.pt", run / "best.pt")
    assert main(["evaluate", "--run", str(run), "--bn", "running"]) == 2
    line = one_line_error(capsys)
    assert "best.pt does not fit this run's network" in line and "size mismatch" in line


@pytest.mark.parametrize("text, words", [
    ('a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
     'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nmodel:\n  channels: [1, 2, 3, 4, *c]\n', "aliases"),
    ("train:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'"),
    ("model:\n  channels: [16, 32, 64, 128, [1, 2]]\n", "expected a list of numbers"),
    ("train:\n  ? [a, b]\n  : 1\n", "a key must be a plain name"),
    ("model:\n  channels:\n" + "  - 16\n" * 300_000, "a config is at most 1 MiB"),
])
def test_hostile_yaml_is_refused_at_once(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=words) as e:
        load_config(path)
    assert time.monotonic() - start < 5 and len(str(e.value)) < 300


def test_extends_of_a_folder_and_a_deep_chain_are_named(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("extends: sub\n")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path / "a.yaml")
    for i in range(3000):
        (tmp_path / f"c{i}.yaml").write_text(f"extends: c{i + 1}.yaml\n")
    (tmp_path / "c3000.yaml").write_text("train:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="chains more than"):
        load_config(tmp_path / "c0.yaml")


@pytest.mark.parametrize("sets, words", [
    ([f"train.threads={max(64, 4 * (os.cpu_count() or 1))}"], "more threads than"),
    (["train.batch_size=1000000"], "would need at least"),
    (["data.size=1000000000"], "would need at least"),
    (["data.labeled=1", "train.batch_size=64"], "larger than the"),
    (["model.channels=[16,32,64,128,100000]"], "model.channels=[16, 32, 64, 128, 100000]"),
])
def test_requests_the_machine_cannot_serve_are_refused(tmp_path, capsys, sets, words):
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(tmp_path / "r"), sets=sets) == 2
    line = one_line_error(capsys)
    assert words in line and "data.patch" not in line  # a 2D run has no patch


def test_ctrl_c_in_train_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    real, calls = Trainer.train_step, {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    out = tmp_path / "run"
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(out),
               sets=["train.iterations=6", "train.val_every=2"]) == 130
    line = one_line_error(capsys)
    assert "latest.pt holds iteration 2" in line and "resume" in line
    monkeypatch.setattr(Trainer, "train_step", real)
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(out),
               sets=["train.iterations=6", "train.val_every=2"]) == 0
