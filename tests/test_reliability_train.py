"""Run folders: no code runs from a checkpoint, no run is lost or overwritten, and every
bad input to `train`/`evaluate` gets one line saying what to do."""
import json
import os
import pickle
import stat

import h5py
import numpy as np
import pytest
import torch

from crossmatch_lite.__main__ import _print_metrics, main
from crossmatch_lite.config import load_config
from crossmatch_lite.data import DataError, load_data
from crossmatch_lite.run.files import atomic_write_json
from crossmatch_lite.run.folder import locked
from crossmatch_lite.train import RunMismatch, train
from killing import train_until_killed_at

TINY = ["data.name=toy_acdc", "data.size=32", "train.batch_size=2", "train.progress=false", "train.threads=1",
        "model.channels=[4,8,16,32,64]", "eval.distances=false", "eval.precise_bn_batches=0",
        "train.iterations=2", "train.val_every=2"]


def cli(*args, sets=()):
    argv = list(args)
    for s in list(TINY) + list(sets):
        argv += ["--set", s]
    return main(argv)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def toy_data():
    return load_data(load_config(None, TINY).data, seed=0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, toy_data):
    """A finished crossmatch run; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(load_config("configs/crossmatch.yaml", TINY), out, data=toy_data)
    return out


def copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ 1. safe loading

def test_pickle_payload_in_best_pt_runs_nothing(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = torch.load(run / "best.pt", weights_only=True)
    state["x"] = Payload()
    with open(run / "best.pt", "wb") as f:
        pickle.dump(state, f)
    assert main(["evaluate", "--run", str(run)]) == 2
    assert not marker.exists()
    assert "best.pt" in one_line_error(capsys)


# ------------------------------------------------------------------ 2. empty val list
def test_empty_val_list_is_refused_before_training(tmp_path, capsys, toy_data):
    split = dict(toy_data.split, val=[])
    (tmp_path / "split.json").write_text(json.dumps(split))
    code = cli("train", "--config", "configs/crossmatch.yaml", "--out", str(tmp_path / "run"),
               sets=[f"data.split_file={tmp_path / 'split.json'}"])
    assert code == 2
    assert "no val cases" in one_line_error(capsys)
    assert not (tmp_path / "run" / "latest.pt").exists()


# ------------------------------------------------------------------ 3. no overwrite, lock
def test_finished_run_without_latest_refuses_another_config(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    (run / "latest.pt").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code = cli("train", "--config", "configs/supervised.yaml", "--out", str(run))
    assert code == 2 and "different config" in one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name in before} == before


def test_finished_run_without_latest_same_config_returns_its_summary(finished, tmp_path, toy_data):
    run = copy_run(finished, tmp_path / "run")
    (run / "latest.pt").unlink()
    rows = (run / "metrics.jsonl").read_text()
    summary = train(load_config("configs/crossmatch.yaml", TINY), run, data=toy_data)
    assert summary == json.loads((finished / "summary.json").read_text())
    assert (run / "metrics.jsonl").read_text() == rows  # no duplicated rows


def test_second_train_into_a_folder_in_use_stops_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    with locked(out):  # as a concurrent `train --out run` holds it
        code = cli("train", "--config", "configs/supervised.yaml", "--out", str(out))
        assert code == 2
        assert "in use by another training process" in one_line_error(capsys)
        assert not (out / "config.yaml").exists()
    with locked(out):  # released when its holder stops
        pass


def test_lock_is_exclusive_between_processes(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "run"
    with locked(out):
        code = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                               "from crossmatch_lite.run.folder import locked, RunLocked\n"
                               "try:\n  with locked(Path(sys.argv[1])): sys.exit(0)\n"
                               "except RunLocked: sys.exit(3)", str(out)]).returncode
    assert code == 3


def test_resume_with_moved_data_root_and_cache(tmp_path, toy_data, monkeypatch):
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=4", "data.root=/data/old"])
    train_until_killed_at(cfg, tmp_path / "run", toy_data, monkeypatch, 3)
    moved = load_config("configs/supervised.yaml", TINY + ["train.iterations=4", "data.root=/data/new",
                                                           "data.cache=false"])
    assert train(moved, tmp_path / "run", data=toy_data)["iterations"] == 4


def test_resume_refuses_other_data_under_the_same_config(finished, tmp_path, toy_data):
    import dataclasses
    run = copy_run(finished, tmp_path / "run")
    (run / "summary.json").unlink()
    other = dataclasses.replace(toy_data, train_images=np.array(toy_data.train_images)[::-1].copy())
    with pytest.raises(RunMismatch, match="fingerprint"):
        train(load_config("configs/crossmatch.yaml", TINY), run, data=other)


# ------------------------------------------------------------------ 5. fully labeled
def test_fully_labeled_supervised_run(tmp_path):
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(tmp_path / "run"),
               sets=["data.labeled=40"]) == 0
    assert json.loads((tmp_path / "run" / "split.json").read_text())["unlabeled"] == []


def test_fully_labeled_crossmatch_run_is_refused_with_the_fix(tmp_path, capsys):
    code = cli("train", "--config", "configs/crossmatch.yaml", "--out", str(tmp_path / "run"),
               sets=["data.labeled=40"])
    assert code == 2 and "configs/supervised.yaml" in one_line_error(capsys)


# ------------------------------------------------------------------ 6. contradictions
def test_contradicting_switches_are_reported_once(tmp_path, capsys, toy_data):
    cfg = load_config("configs/crossmatch.yaml", TINY + ["perturb.feature.enabled=false"])
    train(cfg, tmp_path / "run", data=toy_data)
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: switches")]
    assert len(warnings) == 1 and "distillation terms a-d" in warnings[0] and "e-f" in warnings[0]


def test_consistent_presets_give_no_warning():
    from crossmatch_lite.switches import dropped_terms
    for preset in ("crossmatch", "supervised", "fixmatch", "unimatch"):
        assert dropped_terms(load_config(f"configs/{preset}.yaml")) == [], preset


# ------------------------------------------------------------------ 7. clear messages
@pytest.mark.parametrize("labeled, fragment", [("0", "data.labeled"), ("2.5", "whole count"),
                                               ("41", "training pool has 40")])
def test_bad_labeled_counts_get_one_line(tmp_path, capsys, labeled, fragment):
    code = cli("train", "--config", "configs/supervised.yaml", "--out", str(tmp_path / "run"),
               sets=[f"data.labeled={labeled}"])
    assert code == 2 and fragment in one_line_error(capsys)


def test_malformed_yaml_config_gets_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [0.1\n  seed: 1\n")
    code = main(["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert code == 2 and "not valid YAML" in one_line_error(capsys)


def test_truncated_h5_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for case in ("patient038_frame01", "patient038_frame02", "patient002_frame01"):
        with h5py.File(data / f"{case}.h5", "w") as f:
            f["image"], f["label"] = rng.random((2, 8, 8)), np.zeros((2, 8, 8), np.uint8)
    bad = data / "patient038_frame02.h5"
    bad.write_bytes(bad.read_bytes()[:700])
    cfg = load_config(None, [f"data.root={tmp_path}", "data.size=32", "data.cache=false", "data.labeled=1"])
    with pytest.raises(DataError, match="patient038_frame02.h5 cannot be read"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_data(cfg.data, seed=0)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_unreadable_latest_pt(finished, tmp_path, capsys, toy_data, content):
    run = copy_run(finished, tmp_path / "run")
    (run / "latest.pt").write_bytes(content)
    # A finished run stays usable: its summary is returned, with a warning.
    assert cli("train", "--config", "configs/crossmatch.yaml", "--out", str(run)) == 0
    assert "latest.pt is truncated" in capsys.readouterr().err
    # An unfinished one stops with one line saying how to restart.
    (run / "summary.json").unlink()
    assert cli("train", "--config", "configs/crossmatch.yaml", "--out", str(run)) == 2
    assert "move" in one_line_error(capsys)


def test_truncated_best_pt_on_evaluate(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes()[:1000])
    assert main(["evaluate", "--run", str(run)]) == 2
    assert "best.pt is truncated" in one_line_error(capsys)


def test_torn_last_metrics_line_is_tolerated(tmp_path, toy_data, monkeypatch):
    cfg = load_config("configs/supervised.yaml", TINY + ["train.iterations=4", "train.log_every=1"])
    train_until_killed_at(cfg, tmp_path / "run", toy_data, monkeypatch, 4)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 3, "lo')  # killed mid-write
    train(cfg, tmp_path / "run", data=toy_data)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "loss" in r] == [1, 2, 3, 4]


# ------------------------------------------------------------------ 8. smaller points
def test_hd95_line_shows_n_empty(capsys):
    m = {"n_cases": 2, "n_empty": 3, "dice": {"mean": 0.5, "RV": 0.5},
         "hd95_mm": {"mean": 4.0, "RV": 4.0}}
    _print_metrics("test", m)
    assert "n_empty 3" in capsys.readouterr().out
    _print_metrics("test", {k: v for k, v in m.items() if k != "n_empty"})
    assert "n_empty" not in capsys.readouterr().out


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_missing_gpu_is_one_line(tmp_path, capsys, device):
    code = cli("train", "--config", "configs/supervised.yaml", "--out", str(tmp_path / "run"),
               sets=[f"train.device={device}"])
    assert code == 2 and "train.device" in one_line_error(capsys)


def test_out_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    code = cli("train", "--config", "configs/supervised.yaml", "--out", str(tmp_path / "file" / "run"))
    assert code == 2 and "cannot write the run folder" in one_line_error(capsys)


def test_a_foreign_metrics_log_in_a_new_run_folder_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"iteration": 1, "loss": 0.5, "from": "another tool"}\n')
    assert cli("train", "--config", "configs/supervised.yaml", "--out", str(out)) == 2
    assert "holds a metrics.jsonl but no run" in one_line_error(capsys)
    assert "another tool" in (out / "metrics.jsonl").read_text()


def test_resume_drops_log_rows_that_name_no_iteration(finished, tmp_path, toy_data):
    run = copy_run(finished, tmp_path / "run")
    rows = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(rows + '{"note": "pasted by hand"}\n')
    (run / "summary.json").unlink()  # resume, so the log is read back and cut to the checkpoint
    train(load_config("configs/crossmatch.yaml", TINY), run, data=toy_data)
    assert "pasted by hand" not in (run / "metrics.jsonl").read_text()
