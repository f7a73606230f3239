"""The Ray backend on a real local Ray cluster gives the same table as the local backend.

Starts a Ray head on 127.0.0.1 (`ray start --head`), runs a two-cell grid of tiny cells
on it and on the local backend, compares results.csv, and stops the head afterwards.
Skipped when Ray (the optional extra, requirements-ray.txt) is not installed.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("ray")

from test_ablations import ROOT, SUPERVISED, ablations_cmd, env, tiny_spec, write_notebook  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray")) if Path(sys.executable).with_name("ray").exists() else shutil.which("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    if RAY is None:
        pytest.skip("the ray command is not on PATH")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    e = env()
    e["RAY_USAGE_STATS_ENABLED"] = "0"
    e["RAY_raylet_start_wait_time_s"] = "120"  # a loaded 2-core machine registers the node slowly
    start = subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                            "--include-dashboard=false", "--num-cpus=2", "--num-gpus=0",
                            f"--temp-dir={temp}", "--disable-usage-stats"],
                           env=e, capture_output=True, text=True, timeout=180)
    if start.returncode != 0:
        pytest.fail(f"ray start failed:\n{start.stdout[-2000:]}\n{start.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=e, capture_output=True, timeout=120)


def test_ray_backend_matches_local(ray_head, tmp_path):
    spec = tiny_spec({"supervised": SUPERVISED, "crossmatch": {}})
    grid = tmp_path / "tiny.yaml"
    grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    nb = write_notebook(tmp_path / "05_train.ipynb")
    common = ["--notebook", nb, "--set", "train.threads=1"]  # one thread each: bitwise-equal CPU math
    e = env()
    e.pop("RAY_ADDRESS", None)
    ray_run = subprocess.run(ablations_cmd("run", grid, "--out", tmp_path / "ray", "--backend", "ray",
                                           "--address", ray_head, *common),
                             env=e, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    local = subprocess.run(ablations_cmd("run", grid, "--out", tmp_path / "local", "--jobs", 2, *common),
                           env=e, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]

    key = ["cell", "split", "metric", "class"]
    a = pd.read_csv(tmp_path / "ray" / "results.csv").sort_values(key).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "local" / "results.csv").sort_values(key).reset_index(drop=True)
    assert len(a) > 0 and a[key].equals(b[key])  # same cells (same ids: threads are not part of them)
    pd.testing.assert_series_equal(a["value"], b["value"], check_exact=False, rtol=1e-9, atol=1e-12)
    sa = pd.read_csv(tmp_path / "ray" / "summary.csv")
    sb = pd.read_csv(tmp_path / "local" / "summary.csv")
    pd.testing.assert_frame_equal(sa, sb)
    for out in ("ray", "local"):  # each backend keeps the executed notebook and the run per cell
        cells = list((tmp_path / out / "cells").iterdir())
        assert len(cells) == 2
        for c in cells:
            assert (c / "05_train.ipynb").exists() and (c / "run" / "best.pt").exists()
            assert yaml.safe_load((c / "status.json").read_text())["backend"] == out
