"""The training notebook each cell executes, and a minimal stand-in for it.

The real notebook is `notebooks/05_train.ipynb`. Its papermill parameters are
`config` (a YAML path), `overrides` (list of "key=value"), `apply_convenience` (bool)
and `out_dir` (the run folder). The runner passes the cell's fully resolved config,
no overrides and no convenience changes, so the notebook trains exactly the cell.

Until that notebook exists (or with `--notebook stand-in`), a four-cell stand-in with the
same parameters is written and executed instead; the runner says so.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from crossmatch_lite.run.files import atomic_write_text

from .grid import PROJECT_ROOT

DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "05_train.ipynb"
STAND_IN = "stand-in"

PARAMETERS = '''# Parameters (papermill)
config = "configs/crossmatch.yaml"
overrides = []
apply_convenience = False
out_dir = "runs/notebook"
'''

TRAIN = '''from crossmatch_lite.config import load_config
from crossmatch_lite.train import train

cfg = load_config(config, overrides)
summary = train(cfg, out_dir)
print("test Dice", summary["test"]["dice"])
'''


def stand_in_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Train one ablation cell (stand-in for notebooks/05_train.ipynb)"),
        params,
        nbformat.v4.new_code_cell(TRAIN),
    ]
    return nb


def write_stand_in(path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, nbformat.writes(stand_in_notebook()))
    return path
