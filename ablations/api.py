"""Running a grid from Python, as notebook 06 does: the same runner and report as
`python -m ablations run`, with the grid given as a dict."""
from __future__ import annotations

from pathlib import Path

import yaml

from crossmatch_lite.run.files import atomic_write_text
from crossmatch_lite.tutorial.smoke import smoke_mode

from .grid import load_grid
from .report import render
from .runner import run_grid


def run_grid_spec(spec: dict, out: str | Path, sets: list[str] = (), notebook: str | None = None,
                  jobs: int = 1) -> Path:
    """Run a grid given as a dict (the YAML format of `ablations.grid`) into `out` and render
    its report; the spec is kept as out/grid.yaml, so `python -m ablations run out/grid.yaml
    --out out` repeats it from a terminal. Finished cells are skipped, as always."""
    out = Path(out)
    grid_file = out / "grid.yaml"
    atomic_write_text(grid_file, yaml.safe_dump(spec, sort_keys=False))
    result = run_grid(load_grid(grid_file, list(sets)), out, jobs=jobs, notebook=notebook,
                      cli_sets=list(sets), smoke=smoke_mode())
    if result.failed:
        raise RuntimeError(f"{result.failed} grid cell(s) failed; see {out}/cells/*/log.txt")
    render(out)
    return out
