"""Command line: `python -m ablations run|status|report`.

Exit status of `run`: 0 when every cell finished, else the number of failed cells
(capped at 100). A grid or usage error exits 101, an interrupt 130.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .runner import MAX_EXIT

USAGE_ERROR = 101


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own status 2 would read as "2 cells failed"
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def cmd_run(args) -> int:
    from crossmatch_lite.tutorial.smoke import smoke_mode

    from .grid import GridError, load_grid
    from .runner import run_grid

    grid = load_grid(args.grid, args.set)
    if args.dry_run:
        for c in grid.cells:
            print(f"{c.id}  {c.label}")
        print(f"{len(grid.cells)} cells, {grid.excluded} excluded", file=sys.stderr)
        return 0
    t0 = time.time()
    if args.jobs == "auto":
        from crossmatch_lite.run.runtime import available_cores

        jobs = 1 if float(grid.resources.get("gpus", 0)) > 0 else min(4, available_cores())
    else:
        try:
            jobs = int(args.jobs)
        except ValueError:
            raise GridError(f"--jobs expects a number or auto, got {args.jobs!r}") from None
    res = run_grid(grid, args.out, backend=args.backend, jobs=jobs, address=args.address,
                   notebook=args.notebook, cli_sets=args.set, smoke=smoke_mode())
    print(f"{res.ran - res.failed} cells ran, {res.skipped} already finished, {res.failed} failed "
          f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if not args.no_report:
        from .report import up_to_date

        if res.ran == 0 and up_to_date(args.out):
            print((Path(args.out) / "summary.md").read_text())
            print(f"nothing to run; the report in {args.out} is up to date "
                  f"(`python -m ablations report {args.out}` re-renders it)", file=sys.stderr)
        else:
            _report(args.out)
    if res.failed:
        print(f"{res.failed} cell(s) failed; see `python -m ablations status {args.out}`; "
              "re-run the same command to retry them", file=sys.stderr)
    return min(res.failed, MAX_EXIT)


def _report(out) -> None:
    from .report import render

    digest = render(out)
    print(digest["markdown"])
    print(f"report: {Path(out) / 'results.csv'}, {Path(out) / 'summary.md'}, figures: "
          f"{', '.join(digest['figures']) or 'none'} in {Path(out) / 'figures'}", file=sys.stderr)


def cmd_report(args) -> int:
    _report(args.dir)
    return 0


def _alive(pid) -> bool:
    import os

    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def cmd_status(args) -> int:
    import json

    from .runner import cell_dir, read_manifest, read_status

    out = Path(args.dir)
    m = read_manifest(out)
    counts: dict[str, int] = {}
    lines = []
    for c in m["cells"]:
        cdir = cell_dir(out, c["id"])
        st = read_status(cdir)
        state = st.get("state", "pending")
        if state == "done" and not (cdir / "summary.json").exists():
            state = "pending"
        if state == "running" and not _alive(st.get("pid")):
            state = "interrupted"  # its runner is gone (killed): the next run restarts it
        counts[state] = counts.get(state, 0) + 1
        extra = ""
        if state == "done":
            try:
                dice = json.loads((cdir / "summary.json").read_text())["test"]["dice"]["mean"]
                extra = f"test Dice {100 * dice:.1f}  ({st.get('seconds', '?')} s)"
            except (KeyError, TypeError, ValueError):
                extra = "summary unreadable"
        elif state == "failed":
            extra = (st.get("error") or "").splitlines()[0][:120] if st.get("error") else ""
            extra += f"  [log: {cdir / 'log.txt'}]"
        elif state == "running":
            extra = f"since {st.get('started')} (runner pid {st.get('pid')})"
        label = ", ".join(f"{k}={v}" for k, v in c["axes"].items())
        lines.append(f"{c['id']}  {state:<11} {label:<48} {extra}")
    known = {c["id"] for c in m["cells"]}
    stale = [p.name for p in (out / "cells").glob("*") if p.is_dir() and p.name not in known] if (out / "cells").exists() else []
    print(f"grid {m['name']} ({m.get('grid_file')}): {len(m['cells'])} cells: "
          + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    print("\n".join(lines))
    codes = {read_status(cell_dir(out, c["id"])).get("code") for c in m["cells"]} - {None}
    if len(codes) > 1:
        print(f"note: finished cells come from {len(codes)} versions of the crossmatch_lite sources "
              "(status.json 'code'); delete their folders to re-run them with the current code")
    if stale:
        print(f"{len(stale)} cell folder(s) from other grid configurations kept in {out / 'cells'} (not reported)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m ablations", description="Run ablation grids of the training notebook.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run (or resume) every cell of a grid, then write the report")
    r.add_argument("grid", help="grid YAML, e.g. ablations/grids/quick.yaml")
    r.add_argument("--out", required=True, help="results folder; re-running with it skips finished cells")
    r.add_argument("--backend", choices=("local", "ray"), default="local")
    r.add_argument("--jobs", default="auto", help="local backend: cells at once; each gets max(1, cores // jobs) "
                   "torch threads unless the grid sets train.threads. auto (default): 1 for grids that ask for "
                   "a GPU, else min(4, cores)")
    r.add_argument("--address", default=None, help="ray backend: HOST:PORT of the cluster (default: RAY_ADDRESS, "
                   "else a running local cluster, else a new local one)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every cell, e.g. --set train.iterations=2000 (repeatable)")
    r.add_argument("--notebook", default=None, help="training notebook to execute per cell "
                   "(default notebooks/05_train.ipynb; 'stand-in' for the built-in minimal one)")
    r.add_argument("--no-report", action="store_true", help="skip writing the table and figures")
    r.add_argument("--dry-run", action="store_true", help="list the cells and their ids, run nothing")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="state of every cell of a results folder")
    s.add_argument("dir")
    s.set_defaults(func=cmd_status)
    rp = sub.add_parser("report", help="re-render results.csv, summary and figures without running anything")
    rp.add_argument("dir")
    rp.set_defaults(func=cmd_report)
    args = p.parse_args(argv)
    from crossmatch_lite.config import ConfigError

    from .grid import GridError
    from .runner import RunnerError

    try:
        return args.func(args)
    except (GridError, ConfigError, RunnerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted; finished cells are kept, re-run the same command to continue", file=sys.stderr)
        return 130
