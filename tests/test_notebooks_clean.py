"""The tutorial notebooks as committed: no outputs, a papermill parameters cell, in sync
with their generator, and 05_train's parameter contract (the ablation runner relies on it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("0[0-6]_*.ipynb"))
COMMON = {"dataset", "data_root", "labeled", "iterations", "seed", "overrides", "out_dir"}


def test_the_series_is_complete():
    names = [p.stem for p in NOTEBOOKS]
    for prefix in ("00_quickstart", "01_data", "02_image_perturbations", "03_feature_perturbations",
                   "04_distillation", "05_train", "06_ablations"):
        assert prefix in names, f"notebooks/{prefix}.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; run python notebooks/build_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(path):
    pm = pytest.importorskip("papermill")
    params = pm.inspect_notebook(str(path))
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged parameters"
    missing = COMMON - set(params)
    assert not missing, f"{path.name}: parameters {sorted(missing)} missing"
    assert "preset" in params or "config" in params


def test_train_notebook_contract():
    pm = pytest.importorskip("papermill")
    params = pm.inspect_notebook(str(NB_DIR / "05_train.ipynb"))
    expected = {"config": '"../configs/crossmatch.yaml"', "overrides": "[]", "dataset": '"toy_acdc"',
                "data_root": '""', "labeled": "3.0", "iterations": "300", "seed": "0", "size": "64",
                "batch_size": "4", "out_dir": '"runs/05_train"', "apply_convenience": "True"}
    for name, default in expected.items():
        assert name in params, f"05_train lost its parameter {name}"
        assert params[name]["default"] == default, (name, params[name]["default"])


def test_notebooks_match_their_generator():
    r = subprocess.run([sys.executable, str(NB_DIR / "build_notebooks.py"), "--check"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_executed_copies_inside_notebooks():
    stray = [p for p in NB_DIR.rglob("*.ipynb") if p not in NOTEBOOKS and ".ipynb_checkpoints" not in p.parts]
    assert not stray, f"executed or stray notebooks inside notebooks/ would be collected by nbval: {stray}"


def test_config_paths_resolve_from_anywhere(tmp_path, monkeypatch):
    from crossmatch_lite import viz

    for cwd in (ROOT, NB_DIR, tmp_path):
        monkeypatch.chdir(cwd)
        for given in ("../configs/crossmatch.yaml", "configs/supervised.yaml", "crossmatch"):
            assert viz.resolve_config_path(given).is_file(), (cwd, given)
    with pytest.raises(FileNotFoundError, match="configs/"):
        viz.resolve_config_path("no_such_preset.yaml")


def test_convenience_overrides_come_before_the_users():
    from crossmatch_lite import viz

    conv = viz.convenience_overrides("toy_acdc", "", 3.0, 300, 1, 64, 4)
    assert "train.val_every=50" in conv and "data.size=64" in conv and not any(c.startswith("data.root") for c in conv)
    cfg = viz.notebook_config("../configs/crossmatch.yaml", ["train.iterations=7"], conv)
    assert cfg.train.iterations == 7 and cfg.train.seed == 1 and cfg.data.name == "toy_acdc"
    assert cfg.train.progress is False
