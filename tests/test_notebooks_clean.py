"""The tutorial notebooks as committed: jupytext pairs in sync, no outputs, one papermill
parameters cell holding only parameters the notebook uses, and 05_train's parameter
contract (the ablation runner relies on it)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("0[0-9]*_*.ipynb"))  # 00_x ... 08_x and 04b_x
SERIES = ("00_quickstart", "01_data", "02_image_perturbations", "03_feature_perturbations",
          "04_distillation", "04b_one_iteration_by_hand", "05_train", "06_ablations", "07_your_data_your_idea", "08_3d_left_atrium")


def unsynced_pairs(nb_dir: Path) -> list[str]:
    """Notebooks whose py:percent twin is missing or holds other cells (sources compared
    after a `jupytext --to ipynb` round trip of the .py), with the reason."""
    jupytext = pytest.importorskip("jupytext")
    problems = []
    for ipynb in sorted(nb_dir.glob("0[0-9]*_*.ipynb")):
        py = ipynb.with_suffix(".py")
        if not py.exists():
            problems.append(f"{ipynb.name}: no {py.name}")
            continue
        nb = json.loads(ipynb.read_text())
        if nb["metadata"].get("jupytext", {}).get("formats") != "ipynb,py:percent":
            problems.append(f"{ipynb.name}: not paired (jupytext formats metadata missing)")
        from_py = jupytext.read(py)
        a = [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]
        b = [(c.cell_type, c.source) for c in from_py.cells]
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"{ipynb.name} and {py.name} differ from cell {first} on")
    return problems


def test_the_series_is_complete_and_the_generator_gone():
    names = [p.stem for p in NOTEBOOKS]
    for prefix in SERIES:
        assert prefix in names, f"notebooks/{prefix}.ipynb is missing"
    assert not (NB_DIR / "nb_sources.py").exists() and not (NB_DIR / "build_notebooks.py").exists()


def test_pairs_are_in_sync():
    problems = unsynced_pairs(NB_DIR)
    assert not problems, ("; ".join(problems)
                          + ". Run `jupytext --sync notebooks/0*.ipynb` (or save in JupyterLab with jupytext installed)")


def test_an_edit_on_one_side_is_caught(tmp_path):
    for ext in ("ipynb", "py"):
        shutil.copy(NB_DIR / f"01_data.{ext}", tmp_path)
    assert unsynced_pairs(tmp_path) == []
    py = tmp_path / "01_data.py"
    py.write_text(py.read_text().replace("n_show = 6", "n_show = 7"))
    assert unsynced_pairs(tmp_path) == ["01_data.ipynb and 01_data.py differ from cell 1 on"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them (jupyter nbconvert --clear-output)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_only_used_parameters(path):
    pm = pytest.importorskip("papermill")
    params = pm.inspect_notebook(str(path))
    nb = json.loads(path.read_text())
    tagged = [i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged parameters"
    later = "\n".join("".join(c["source"]) for c in nb["cells"][tagged[0] + 1:] if c["cell_type"] == "code")
    unused = [p for p in params if not re.search(rf"\b{p}\b", later)]
    assert not unused, f"{path.name}: parameters {unused} are never used"
    setup_cells = [c for c in nb["cells"] if "setup(" in "".join(c["source"])]
    assert setup_cells, f"{path.name}: no `setup(...)` call"


def test_train_notebook_contract():
    pm = pytest.importorskip("papermill")
    params = pm.inspect_notebook(str(NB_DIR / "05_train.ipynb"))
    expected = {"config": '"../configs/crossmatch.yaml"', "overrides": "[]", "dataset": '"toy_acdc"',
                "data_root": '""', "labeled": "3.0", "iterations": "300", "seed": "0", "size": "64",
                "batch_size": "4", "out_dir": '"runs/05_train"', "apply_convenience": "True"}
    for name, default in expected.items():
        assert name in params, f"05_train lost its parameter {name}"
        assert params[name]["default"] == default, (name, params[name]["default"])


def test_no_executed_copies_inside_notebooks():
    stray = [p for p in NB_DIR.rglob("*.ipynb") if p not in NOTEBOOKS and ".ipynb_checkpoints" not in p.parts
             and "_build" not in p.parts]
    assert not stray, f"executed or stray notebooks inside notebooks/ would be collected by nbval: {stray}"


def test_config_paths_resolve_from_anywhere(tmp_path, monkeypatch):
    from crossmatch_lite.tutorial.notebook import resolve_config_path

    for cwd in (ROOT, NB_DIR, tmp_path):
        monkeypatch.chdir(cwd)
        for given in ("../configs/crossmatch.yaml", "configs/supervised.yaml", "crossmatch"):
            assert resolve_config_path(given).is_file(), (cwd, given)
    with pytest.raises(FileNotFoundError, match="configs/"):
        resolve_config_path("no_such_preset.yaml")


def test_convenience_overrides_come_before_the_users():
    from crossmatch_lite.tutorial.notebook import convenience_overrides, notebook_config

    conv = convenience_overrides("toy_acdc", "", 3.0, 300, 1, 64, 4)
    assert "train.val_every=50" in conv and "data.size=64" in conv and not any(c.startswith("data.root") for c in conv)
    cfg = notebook_config("../configs/crossmatch.yaml", ["train.iterations=7"], conv)
    assert cfg.train.iterations == 7 and cfg.train.seed == 1 and cfg.data.name == "toy_acdc"
    assert cfg.train.progress is False


def test_setup_switches_to_smoke_folders(monkeypatch, capsys):
    from crossmatch_lite.tutorial.notebook import SMOKE_ITERATIONS, setup

    monkeypatch.setenv("CROSSMATCH_LITE_SMOKE", "1")
    ctx = setup("05_train", config="configs/crossmatch.yaml", iterations=300, out_dir="runs/05_train")
    assert ctx.out.parts[-3:] == ("runs", "smoke", "05_train") and not ctx.resume
    assert ctx.cfg.train.iterations == SMOKE_ITERATIONS["05_train"] and ctx.cfg.eval.precise_bn_batches == 4
    ctx = setup("05_train", config="configs/crossmatch.yaml", iterations=300, out_dir="runs/elsewhere")
    assert ctx.out.name == "elsewhere" and ctx.cfg.train.iterations == 12  # still CI-sized, own folder kept
    assert "smoke mode" in capsys.readouterr().out
