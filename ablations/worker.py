"""Runs one cell: `python -m ablations.worker CELL_DIR NOTEBOOK`.

Executes the training notebook with papermill into CELL_DIR/<notebook name>, training
into CELL_DIR/run, then copies run/summary.json to CELL_DIR/summary.json. On failure
it writes CELL_DIR/error.txt (the traceback) and exits 1. It is a separate process so
that a crash of any kind (even a segfault in the kernel) is recorded as this cell's
failure, and so that it dies with the runner (the kernel dies with it).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

RUN = "run"


def execute(cell_dir: Path, notebook: Path) -> dict:
    import papermill as pm

    from crossmatch_lite.run.files import atomic_write_json
    from .grid import PROJECT_ROOT

    run_dir = cell_dir / RUN
    out_nb = cell_dir / notebook.name
    with open(cell_dir / "kernel.log", "a") as log:
        pm.execute_notebook(
            str(notebook), str(out_nb),
            parameters={"config": str(cell_dir / "config.yaml"), "overrides": [],
                        "apply_convenience": False, "out_dir": str(run_dir)},
            kernel_name="python3", progress_bar=False, log_output=True, stdout_file=log, stderr_file=log,
            start_timeout=300,  # a loaded machine can take minutes to start a kernel
            cwd=str(PROJECT_ROOT),
        )
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise RuntimeError(f"the notebook ran but wrote no {summary_path}")
    summary = json.loads(summary_path.read_text())
    atomic_write_json(cell_dir / "summary.json", summary)
    return summary


def main(argv: list[str]) -> int:
    cell_dir, notebook = Path(argv[0]), Path(argv[1])
    err = cell_dir / "error.txt"
    if err.exists():
        err.unlink()
    try:
        execute(cell_dir, notebook)
    except BaseException as e:  # noqa: BLE001 - every failure is this cell's record
        text = traceback.format_exc()
        # papermill's error carries the notebook's own traceback; keep its last line as the reason.
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        if getattr(e, "ename", None):
            reason = f"{e.ename}: {e.evalue}"
        from crossmatch_lite.run.files import atomic_write_text

        atomic_write_text(err, reason + "\n\n" + text)
        print(text, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main(sys.argv[1:]))
