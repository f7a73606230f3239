"""ablations/: grid expansion, cell identity, resume after a kill, failures, report.

The integration tests run a three-cell grid of tiny cells (toy data, size 32, 4
iterations) through the real runner in a subprocess, executing a stand-in training
notebook built with nbformat (notebooks/05_train.ipynb has the same parameters).
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from ablations.grid import GridError, cell_hash, expand, load_grid
from ablations.report import paired_difference, summary_table
from ablations.runner import prepare_cells, write_status

ROOT = Path(__file__).resolve().parents[1]
SUPERVISED = {"preset": "supervised", "perturb.image.enabled": False, "perturb.feature.enabled": False,
              "distill.enabled": False, "loss.normalizer": 1.0}
TINY_SET = {"data.name": "toy_acdc", "data.size": 32, "data.labeled": 1, "train.batch_size": 2,
            "train.iterations": 4, "train.val_every": 2, "train.log_every": 1, "eval.distances": False,
            "train.device": "cpu"}


def tiny_spec(variants: dict, seeds=(0,), **extra) -> dict:
    return {"name": "tiny", "base": "configs/crossmatch.yaml", "set": dict(TINY_SET),
            "axes": {"variant": variants, "seed": {"key": "train.seed", "values": list(seeds)}},
            # A baseline must name an existing value: only grids with one get it.
            **({"baseline": {"variant": "supervised"}} if "supervised" in variants else {}), **extra}


def write_notebook(path: Path) -> Path:
    """A minimal training notebook with the papermill contract of notebooks/05_train.ipynb."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('config = "configs/crossmatch.yaml"\noverrides = []\n'
                                       'apply_convenience = False\nout_dir = "runs/x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from crossmatch_lite.config import load_config\nfrom crossmatch_lite.train import train\n"
        "summary = train(load_config(config, overrides), out_dir)")]
    nbformat.write(nb, str(path))
    return path


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e.pop("CROSSMATCH_LITE_SMOKE", None)
    return e


def ablations_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "ablations", *map(str, args)]


# ---------------------------------------------------------------------------- expansion
def test_expansion_axes_bundles_and_exclusions():
    spec = tiny_spec({"supervised": SUPERVISED, "crossmatch": {}, "eta_0.5": {"distill.eta": 0.5}}, seeds=(0, 1))
    spec["axes"]["labeled"] = {"key": "data.labeled", "values": [1, 3]}
    spec["exclude"] = [{"variant": "eta_0.5", "labeled": 3}, {"variant": ["supervised"], "labeled": 3, "seed": 1}]
    g = expand(spec)
    assert g.axis_names() == ["variant", "seed", "labeled"]
    assert len(g.cells) == 3 * 2 * 2 - 2 - 1 and g.excluded == 3
    combos = [(c.axes["variant"], c.axes["seed"], c.axes["labeled"]) for c in g.cells]
    assert ("eta_0.5", 0, 3) not in combos and ("supervised", 1, 3) not in combos and ("supervised", 0, 3) in combos
    cell = next(c for c in g.cells if c.axes == {"variant": "eta_0.5", "seed": 1, "labeled": 1})
    assert cell.config.distill.eta == 0.5 and cell.config.train.seed == 1 and cell.config.data.labeled == 1
    sup = next(c for c in g.cells if c.axes["variant"] == "supervised")
    assert not sup.config.perturb.image.enabled and sup.config.loss.normalizer == 1.0
    assert sup.config.data.size == 32 and sup.config.data.name == "toy_acdc"  # base set applies
    assert len({c.id for c in g.cells}) == len(g.cells)


def test_expansion_errors_are_explained():
    with pytest.raises(GridError, match="unknown axis"):
        expand({**tiny_spec({"crossmatch": {}}), "exclude": [{"colour": "red"}]})
    with pytest.raises(GridError, match="distill.etta"):
        expand(tiny_spec({"bad": {"distill.etta": 0.2}}))
    with pytest.raises(GridError, match="same config"):
        expand(tiny_spec({"a": {}, "b": {"distill.eta": 0.3}}))  # 0.3 is the default: no difference
    with pytest.raises(GridError, match="every cell"):
        expand({**tiny_spec({"crossmatch": {}}), "exclude": [{"variant": "crossmatch"}]})


def test_cell_identity_is_the_resolved_config_minus_run_only_keys():
    spec = tiny_spec({"crossmatch": {}})
    a = expand(spec).cells[0]
    assert expand(spec).cells[0].id == a.id == cell_hash(a.config)
    for override in ("train.threads=1", "train.device=cuda", "train.progress=false", "train.tensorboard=false",
                     "train.max_minutes=30"):
        assert expand(spec, [override]).cells[0].id == a.id, override
    assert expand(spec, ["train.iterations=5"]).cells[0].id != a.id
    # The same config reached through a different grid is the same cell.
    nested = {**spec, "set": {"data": {"name": "toy_acdc", "size": 32, "labeled": 1},
                              "train": {"batch_size": 2, "iterations": 4, "val_every": 2, "log_every": 1,
                                        "device": "cpu"}, "eval": {"distances": False}}}
    assert expand(nested).cells[0].id == a.id
    # Smoke overrides change the config, hence the identity: smoke results never mix with real ones.
    smoke = {**spec, "smoke": {"train.iterations": 2}}
    assert expand(smoke, smoke=True).cells[0].config.train.iterations == 2
    assert expand(smoke, smoke=True).cells[0].id != expand(smoke, smoke=False).cells[0].id


def test_shipped_grids_expand():
    quick = load_grid(ROOT / "ablations/grids/quick.yaml", smoke=False)
    assert [c.axes["variant"] for c in quick.cells[::2]] == ["supervised", "image_only", "feature_only", "crossmatch"]
    assert len(quick.cells) == 8 and quick.cells[0].config.data.name == "toy_acdc"
    smoke = load_grid(ROOT / "ablations/grids/quick.yaml", smoke=True)
    assert smoke.cells[0].config.train.iterations < quick.cells[0].config.train.iterations
    acdc = load_grid(ROOT / "ablations/grids/acdc_components.yaml")
    assert {c.axes["labeled"] for c in acdc.cells} == {3, 7} and {c.axes["seed"] for c in acdc.cells} == {0, 1, 2}
    assert acdc.cells[0].config.train.iterations == 30000 and acdc.cells[0].config.data.size == 256
    cpu = load_grid(ROOT / "ablations/grids/acdc_components.yaml", ["train.iterations=1500", "data.size=128"])
    assert cpu.cells[0].config.data.size == 128 and cpu.cells[0].id != acdc.cells[0].id
    isic = load_grid(ROOT / "ablations/grids/isic.yaml")
    assert {c.axes["labeled"] for c in isic.cells} == {0.05, 0.1} and isic.cells[0].config.data.name == "isic2018"
    soft = next(c for c in isic.cells if c.axes["variant"] == "soft_distill")
    assert soft.config.distill.mode == "soft"


def test_prepare_skips_finished_and_retries_failed(tmp_path):
    g = expand(tiny_spec({"supervised": SUPERVISED, "crossmatch": {}}, seeds=(0, 1)))
    todo, done = prepare_cells(tmp_path, g, threads=1)
    assert len(todo) == 4 and not done
    first, second, third = (tmp_path / "cells" / c.id for c in g.cells[:3])
    write_status(first, state="done")
    (first / "summary.json").write_text("{}")
    write_status(second, state="failed", error="boom")
    write_status(third, state="done")  # no summary.json: not finished
    todo, done = prepare_cells(tmp_path, g, threads=2)
    assert [c.id for c in done] == [g.cells[0].id] and len(todo) == 3
    cfg = yaml.safe_load((second / "config.yaml").read_text())
    assert cfg["train"]["threads"] == 2 and cfg["train"]["progress"] is False


def test_paired_difference_and_summary():
    a = pd.Series([0.80, 0.70, 0.75], index=[0, 1, 2])
    b = pd.Series([0.60, 0.55, 0.65, 0.9], index=[0, 1, 2, 3])  # seed 3 has no pair
    d = paired_difference(a, b)
    diffs = [0.20, 0.15, 0.10]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert d["n_pairs"] == 3 and d["diff"] == pytest.approx(mean)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((mean - half, mean + half))
    rows = [{"cell": f"{v}{s}", "variant": v, "seed": s, "split": "test", "metric": "dice", "class": "mean",
             "value": val} for v, ser in (("supervised", b.iloc[:3]), ("crossmatch", a)) for s, val in ser.items()]
    manifest = {"name": "t", "axes": [{"name": "variant", "key": None, "values": ["supervised", "crossmatch"]},
                                      {"name": "seed", "key": "train.seed", "values": [0, 1, 2]}],
                "baseline": {"variant": "supervised"}, "paired": "seed"}
    s = summary_table(pd.DataFrame(rows), manifest)
    cm = s[s["variant"] == "crossmatch"].iloc[0]
    assert cm["n"] == 3 and cm["mean"] == pytest.approx(0.75) and cm["diff"] == pytest.approx(mean)
    assert math.isnan(s[s["variant"] == "supervised"].iloc[0]["diff"])


def test_usage_errors_exit_101(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"axes": {"variant": {"x": {"no.such.key": 1}}}}))
    r = subprocess.run(ablations_cmd("run", bad, "--out", tmp_path / "o"), env=env(), cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 101 and "no.such.key" in r.stderr


# ---------------------------------------------------------------------------- the runner
def _wait_for(pred, timeout: float, proc=None) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"runner exited early with {proc.returncode}")
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """Three cells (supervised, crossmatch, one that fails): kill the runner after the first
    finishes, then run the same command again."""
    tmp = tmp_path_factory.mktemp("grid")
    spec = tiny_spec({"supervised": SUPERVISED, "crossmatch": {},
                      "broken": {"data.name": "acdc", "data.root": str(tmp / "no_such_acdc")}})
    grid = tmp / "tiny.yaml"
    grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    nb = write_notebook(tmp / "05_train.ipynb")
    out = tmp / "out"
    ids = [c.id for c in expand(spec).cells]
    first = out / "cells" / ids[0]

    proc = subprocess.Popen(ablations_cmd("run", grid, "--out", out, "--notebook", nb, "--no-report", "--jobs", 1),
                            env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (first / "status.json").exists()
                  and json.loads((first / "status.json").read_text())["state"] == "done", 240, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = {"summary_mtime": (first / "summary.json").stat().st_mtime_ns,
              "second_state": json.loads((out / "cells" / ids[1] / "status.json").read_text())["state"]
              if (out / "cells" / ids[1] / "status.json").exists() else "pending"}
    time.sleep(1.5)  # an orphaned kernel would notice its parent is gone within a second
    resumed = subprocess.run(ablations_cmd("run", grid, "--out", out, "--notebook", nb, "--jobs", 2),
                             env=env(), cwd=ROOT, capture_output=True, text=True, timeout=400)
    return {"out": out, "ids": ids, "grid": grid, "nb": nb, "killed": killed, "resumed": resumed}


def test_kill_mid_grid_loses_nothing_and_duplicates_nothing(killed_and_resumed):
    r = killed_and_resumed
    out, ids = r["out"], r["ids"]
    assert r["killed"]["second_state"] in ("running", "pending")
    st = {i: json.loads((out / "cells" / i / "status.json").read_text()) for i in ids}
    # The finished cell was kept as it was, not re-run.
    assert st[ids[0]]["state"] == "done" and st[ids[0]]["attempts"] == 1
    assert (out / "cells" / ids[0] / "summary.json").stat().st_mtime_ns == r["killed"]["summary_mtime"]
    # The cell in flight at the kill was run again and finished.
    assert st[ids[1]]["state"] == "done"
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(ids)
    log = (out / "runner.log").read_text()
    assert log.count(f"done   {ids[0]}") == 1 and log.count(f"done   {ids[1]}") == 1
    res = pd.read_csv(out / "results.csv")
    assert not res.duplicated(["cell", "split", "metric", "class"]).any()
    assert set(res["cell"]) == set(ids[:2])
    assert {"variant", "seed", "split", "metric", "class", "value"} <= set(res.columns)
    for i in ids[:2]:  # one executed notebook per finished cell, with its summary
        assert (out / "cells" / i / "05_train.ipynb").exists() and (out / "cells" / i / "summary.json").exists()


def test_failing_cell_is_recorded_and_the_rest_go_on(killed_and_resumed):
    r = killed_and_resumed
    out, ids = r["out"], r["ids"]
    assert r["resumed"].returncode == 1, r["resumed"].stderr[-2000:]  # exit status = number of failed cells
    st = json.loads((out / "cells" / ids[2] / "status.json").read_text())
    assert st["state"] == "failed" and "no_such_acdc" in st["error"]
    assert (out / "cells" / ids[2] / "error.txt").exists() and (out / "cells" / ids[2] / "log.txt").exists()
    cells = pd.read_csv(out / "cells.csv")
    assert sorted(cells["state"]) == ["done", "done", "failed"]
    status = subprocess.run(ablations_cmd("status", out), env=env(), cwd=ROOT, capture_output=True, text=True)
    assert status.returncode == 0 and "2 done" in status.stdout and "1 failed" in status.stdout


def test_report_rerenders_without_running(killed_and_resumed):
    out = killed_and_resumed["out"]
    figs = out / "figures"
    for name in ("dice_bar", "dice_heatmap", "per_class_dice", "training_curves", "qualitative"):
        assert (figs / f"{name}.png").exists() and (figs / f"{name}.svg").exists(), name
    before = {str(p): p.read_text() for p in (out / "cells").glob("*/status.json")}
    log_before = (out / "runner.log").read_text()
    for p in [out / "results.csv", out / "summary.md", *figs.glob("*.png")]:
        p.unlink()
    r = subprocess.run(ablations_cmd("report", out), env=env(), cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "results.csv").exists() and (figs / "dice_bar.png").exists() and (figs / "qualitative.png").exists()
    assert "crossmatch" in (out / "summary.md").read_text()
    assert {str(p): p.read_text() for p in (out / "cells").glob("*/status.json")} == before
    assert (out / "runner.log").read_text() == log_before


# ---------------------------------------------------------------------------- the 3D (LA) grid
def test_la_grid_expands_on_the_real_scans_and_shrinks_to_toy_la():
    la = load_grid(ROOT / "ablations/grids/la.yaml", smoke=False)
    assert len(la.cells) == 4 * 3 and {c.axes["labeled"] for c in la.cells} == {4, 8, 16}
    assert {c.config.data.name for c in la.cells} == {"la"} and {c.config.model.arch for c in la.cells} == {"vnet"}
    assert la.cells[0].config.train.iterations == 1500 and la.cells[0].config.data.downsample == 2  # la_cpu
    smoke = load_grid(ROOT / "ablations/grids/la.yaml", smoke=True)
    assert {c.config.data.name for c in smoke.cells} == {"toy_la"}
    assert {c.config.train.iterations for c in smoke.cells} == {4}
    switches = {c.axes["variant"]: (c.config.perturb.image.enabled, c.config.perturb.feature.enabled,
                                    c.config.distill.enabled) for c in smoke.cells}
    assert switches == {"supervised": (False, False, False), "image_only": (True, False, False),
                        "feature_only": (False, True, True), "crossmatch": (True, True, True)}


def test_la_grid_switches_train_in_3d(tmp_path):
    """One iteration of each variant of the LA grid at smoke size: each switch toggled in 3D
    gives the loss terms it should."""
    from crossmatch_lite.data import load_data
    from crossmatch_lite.train import Trainer

    cells = [c for c in load_grid(ROOT / "ablations/grids/la.yaml", ["train.threads=1"], smoke=True).cells
             if c.axes["labeled"] == 4]
    data = load_data(cells[0].config.data, seed=0)
    terms = {}
    for c in cells:
        row = Trainer(c.config, tmp_path / c.id, data=data).train_step()
        assert math.isfinite(row["loss"]), (c.axes, row)
        terms[c.axes["variant"]] = {k for k in ("s", "kd") if k in row}
    assert terms == {"supervised": set(), "image_only": {"s"}, "feature_only": {"kd"}, "crossmatch": {"s", "kd"}}


def test_la_grid_runs_at_smoke_size_on_toy_la(tmp_path):
    """Two cells of the LA grid (supervised and CrossMatch at 4 labeled volumes), at smoke
    size on toy_la, through the runner and notebooks/05_train.ipynb, then the report."""
    spec = yaml.safe_load((ROOT / "ablations/grids/la.yaml").read_text())
    spec["exclude"] = [{"labeled": [8, 16]}, {"variant": ["image_only", "feature_only"]}]
    grid = tmp_path / "la_two_cells.yaml"
    grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    r = subprocess.run(ablations_cmd("run", grid, "--out", out, "--jobs", 1),
                       env={**env(), "CROSSMATCH_LITE_SMOKE": "1"}, cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = pd.read_csv(out / "results.csv")
    dice = res[(res["split"] == "test") & (res["metric"] == "dice") & (res["class"] == "mean")]
    assert sorted(dice["variant"]) == ["crossmatch", "supervised"] and dice["value"].between(0, 1).all()
    assert (out / "figures" / "qualitative.png").exists()  # predicted and drawn as 3D slices
    for cell in (out / "cells").iterdir():
        assert yaml.safe_load((cell / "config.yaml").read_text())["data"]["name"] == "toy_la"


def test_summary_names_the_failed_cells_and_why(tmp_path, capsys):
    """A failed cell is not in the table; summary.md (and the report on stdout) say so."""
    from ablations.cli import main
    from ablations.runner import write_manifest

    grid = expand(tiny_spec({"supervised": SUPERVISED, "crossmatch": {}}, seeds=(0, 1)))
    write_manifest(tmp_path, grid, [], "stand-in", False)
    prepare_cells(tmp_path, grid, threads=1)
    dice = {"RV": 0.5, "Myo": 0.5, "LV": 0.5, "mean": 0.5}
    for c in grid.cells[:3]:
        cdir = tmp_path / "cells" / c.id
        write_status(cdir, state="done")
        (cdir / "summary.json").write_text(json.dumps({"test": {"dice": dice}, "val": {"dice": dice}}))
    broken = grid.cells[3]
    write_status(tmp_path / "cells" / broken.id, state="failed",
                 error="DataError: toy_acdc: data.labeled=9 asks for 9 labeled\n\nTraceback ...")
    assert main(["report", str(tmp_path)]) == 0
    line = (f"1 failed cell(s): `{broken.id}` (variant=crossmatch, seed=1): "
            "DataError: toy_acdc: data.labeled=9 asks for 9 labeled.")
    assert line in (tmp_path / "summary.md").read_text()
    assert line in capsys.readouterr().out


def test_a_refused_runner_leaves_the_holders_pid_in_the_lock(tmp_path):
    from ablations.runner import RunnerError, folder_lock

    with folder_lock(tmp_path):
        with pytest.raises(RunnerError, match="another runner") as e:
            with folder_lock(tmp_path):
                pass
        assert (tmp_path / ".runner.lock").read_text() == f"{os.getpid()}\n"
        assert f"(pid {os.getpid()})" in str(e.value)  # and the refusal names the holder
    with folder_lock(tmp_path):  # free again: the next holder writes its own pid, once
        assert (tmp_path / ".runner.lock").read_text() == f"{os.getpid()}\n"
