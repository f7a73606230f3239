"""The ISIC CPU presets end to end: a smoke run on synthetic ISIC (toy_isic), and the
real-data check a user runs (download from a mirror, then two iterations of isic_cpu)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest_download as H
from crossmatch_lite.__main__ import main
from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data
from ablations.grid import cell_hash, load_grid

ROOT = Path(__file__).resolve().parents[1]
REAL = H.SHARED / "isic2018-2000"
TWO_ITERATIONS = ["--set", "train.iterations=2", "--set", "train.val_every=2"]


def test_isic_cpu_preset_budget_and_labeled_share():
    cfg = load_config(ROOT / "configs/isic_cpu.yaml")
    assert (cfg.data.name, cfg.data.labeled, cfg.data.size, cfg.train.batch_size) == ("isic2018", 0.05, 128, 4)
    # 1.26 CPU-s per iteration measured at this size and batch: the run must fit ~45 CPU-minutes.
    assert cfg.train.iterations * 1.26 / 60 <= 43 and cfg.train.iterations % cfg.train.val_every == 0
    assert load_config(ROOT / "configs/isic_cpu_fully_supervised.yaml").data.labeled == 1400


def test_isic_cpu_preset_trains_on_toy_isic(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--config", str(ROOT / "configs/isic_cpu.yaml"), "--set", "data.name=toy_isic",
                 *TWO_ITERATIONS, "--set", "train.threads=1", "--set", "train.progress=false",
                 # CI time: the evaluations' extras are tested elsewhere
                 "--set", "eval.distances=false", "--set", "eval.precise_bn_batches=2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["test"]["n_cases"] == 80
    split = json.loads((out / "split.json").read_text())
    assert len(split["labeled"]) == 15  # 5 % of toy_isic's 300 training images


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.skipif(not (REAL / "ISIC2018_Task1-2_Training_Input.zip").is_file(),
                    reason="real ISIC 2,000-pair sample not present (set CROSSMATCH_LITE_SAMPLE_DATA)")
def test_real_2000_pairs_download_then_two_iterations_of_isic_cpu(tmp_path):
    server = H.Server(REAL.resolve())  # the Training zips only, as a Training-only mirror
    try:
        err = _run(["data_download", "isic2018", "--mirror", server.url, "--dest", str(tmp_path / "D")], ROOT)
    finally:
        server.close()
    assert "ISIC 2018 ready" in err and "(2000 pairs)" in err
    out = tmp_path / "runs" / "x"
    # The user's command plus one thread: on two cores shared with other jobs, two threads
    # spent ~10x the CPU time in the 1,400 one-image evaluation passes (421 s against 44 s).
    err = _run(["crossmatch_lite", "train", "--config", "configs/isic_cpu.yaml",
                "--set", f"data.root={tmp_path / 'D'}", *TWO_ITERATIONS, "--set", "train.threads=1",
                "--out", str(out)], ROOT)
    assert "isic2018 split: carved" in err
    split = json.loads((out / "split.json").read_text())
    n = {k: len(split[k]) for k in ("labeled", "unlabeled", "val", "test")}
    assert n == {"labeled": 70, "unlabeled": 1330, "val": 200, "test": 400} and sum(n.values()) >= 1900
    assert n["labeled"] == 0.05 * (n["labeled"] + n["unlabeled"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 2 and summary["test"]["n_cases"] == 400 and summary["val"]["n_cases"] == 200
    full = load_data(load_config(ROOT / "configs/isic_cpu_fully_supervised.yaml",
                                 [f"data.root={tmp_path / 'D'}"]).data, seed=0)
    assert (len(full.labeled_idx), len(full.unlabeled_idx)) == (1400, 0)
    assert full.test_cases[0].image.shape == (1, 3, 256, 256)  # scored on the prepared files' grid


@pytest.mark.parametrize("dataset", ["isic", "acdc"])
def test_the_grid_cells_for_supervised_and_crossmatch_are_the_presets_themselves(dataset):
    """The grids' results files share runs with the ISIC and ACDC tables (same seeds): that is
    only true while each cell's resolved config is its preset's, seed for seed."""
    grid = load_grid(ROOT / f"ablations/grids/{dataset}_cpu.yaml", smoke=False)
    variants = list(dict.fromkeys(c.axes["variant"] for c in grid.cells))
    assert variants[:6] == ["supervised", "fixmatch", "unimatch", "image_only", "feature_only", "crossmatch"]
    checked = 0
    for cell in grid.cells:
        preset = {"supervised": f"{dataset}_cpu_supervised.yaml", "crossmatch": f"{dataset}_cpu.yaml"}.get(
            cell.axes["variant"])
        if preset:
            cfg = load_config(ROOT / "configs" / preset, [f"train.seed={cell.axes['seed']}"])
            assert cell_hash(cfg) == cell.id, (cell.axes, preset)
            checked += 1
    assert checked == 10 if dataset == "isic" else 6
    assert load_grid(ROOT / f"ablations/grids/{dataset}_cpu.yaml", smoke=True).cells[0].config.train.iterations == 12
