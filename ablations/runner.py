"""Running a grid: the results folder, per-cell status files, and the two backends.

Layout of a results folder DIR::

    grid.yaml, grid.json       the grid as run, and its manifest (cells, axes, baseline)
    runner.log                 one line per cell start / end, every run appended
    cells/<id>/                one folder per cell, <id> = hash of its resolved config
        cell.json              id and axis values
        config.yaml            the fully resolved config the notebook trains
        status.json            running | done | failed | interrupted, attempts, error, seconds
        05_train.ipynb         the executed notebook: the cell's record
        summary.json           copied from run/ once the cell has finished
        log.txt, kernel.log    the worker's and the notebook kernel's output
        error.txt              traceback of the last failure
        run/                   the training run folder (metrics.jsonl, best.pt, TensorBoard events, ...)
    tensorboard/<label>        a link to cells/<id>/run named by the cell's axis values:
                               `tensorboard --logdir DIR/tensorboard` shows one run per cell
    results.csv, cells.csv, summary.csv, summary.md, figures/    written by `report`

Every file is written atomically; a cell counts as finished only when status.json says
"done" and summary.json exists, so killing the runner loses only the cells in flight.
"""
from __future__ import annotations

import contextlib
import hashlib
import copy
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

import crossmatch_lite
from crossmatch_lite.config import to_dict
from crossmatch_lite.run.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from crossmatch_lite.run.runtime import available_cores

from .grid import Grid, cell_hash
from .notebook import DEFAULT_NOTEBOOK, STAND_IN, write_stand_in

MAX_EXIT = 100  # exit status = number of failed cells, capped here


class RunnerError(RuntimeError):
    pass


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def cell_dir(out: Path, cell_id: str) -> Path:
    return out / "cells" / cell_id


def read_status(cdir: Path) -> dict:
    try:
        return json.loads((cdir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"state": "pending"}


def is_done(cdir: Path) -> bool:
    return read_status(cdir).get("state") == "done" and (cdir / "summary.json").exists()


def write_status(cdir: Path, **fields) -> dict:
    st = read_status(cdir)
    st.update(fields)
    atomic_write_json(cdir / "status.json", st)
    return st


def _error_reason(cdir: Path, rc: int | None) -> str:
    err = cdir / "error.txt"
    if err.exists():
        return err.read_text().split("\n\n", 1)[0].strip()[:2000]
    if rc is not None and rc < 0:
        return f"the worker was killed by signal {-rc}"
    tail = ""
    if (cdir / "log.txt").exists():
        tail = " | ".join((cdir / "log.txt").read_text(errors="replace").strip().splitlines()[-3:])
    return f"the worker exited with status {rc}; {tail}"[:2000]


# ---------------------------------------------------------------------------- the folder
def write_manifest(out: Path, grid: Grid, cli_sets: list[str], notebook: str, smoke: bool) -> None:
    manifest = {
        "name": grid.name,
        "grid_file": grid.path,
        "cli_sets": list(cli_sets),
        "smoke": smoke,
        "notebook": notebook,
        "axes": [{"name": a.name, "key": a.key, "values": a.values} for a in grid.axes],
        "baseline": grid.baseline,
        "paired": grid.paired,
        "resources": grid.resources,
        "excluded": grid.excluded,
        "cells": [{"id": c.id, "axes": c.axes} for c in grid.cells],
    }
    atomic_write_json(out / "grid.json", manifest)
    atomic_write_text(out / "grid.yaml", yaml.safe_dump(grid.spec, sort_keys=False))


def read_manifest(out: Path) -> dict:
    p = Path(out) / "grid.json"
    if not p.exists():
        raise RunnerError(f"{out} is not a grid results folder (no grid.json); run `python -m ablations run GRID --out {out}` first")
    return json.loads(p.read_text())


@contextlib.contextmanager
def folder_lock(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    # "a+", not "w": opening with "w" truncates before the lock is tried, so a refused second
    # runner would wipe the holder's pid. The file is emptied only once the lock is ours.
    f = open(out / ".runner.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise RunnerError(f"another runner{f' (pid {holder})' if holder else ''} is working in {out}; "
                          "wait for it or stop it first") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def resolve_notebook(notebook: str | None, out: Path) -> Path:
    if notebook == STAND_IN or (notebook is None and not DEFAULT_NOTEBOOK.exists()):
        if notebook is None:
            print(f"warning: {DEFAULT_NOTEBOOK} does not exist yet; executing the minimal stand-in "
                  "training notebook instead (pass --notebook PATH to choose)", file=sys.stderr)
        return write_stand_in(out / ".stand_in" / "05_train.ipynb")
    path = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    if not path.is_file():
        raise RunnerError(f"notebook {path} does not exist")
    return path.resolve()


TENSORBOARD = "tensorboard"


def link_for_tensorboard(out: Path, cells: list) -> None:
    """DIR/tensorboard/<label> -> ../cells/<id>/run for every cell, so that TensorBoard names
    each cell by its axis values (a cell folder is named by its config's hash). Best effort:
    where links cannot be made (Windows without the privilege), `tensorboard --logdir DIR`
    still shows every cell, as cells/<id>/run."""
    board = out / TENSORBOARD
    names = {}
    for cell in cells:
        name = re.sub(r"[^A-Za-z0-9=,._+-]", "_", cell.label.replace(", ", ","))[:200] or cell.id
        names[cell.id] = f"{name}_{cell.id}" if name in names.values() else name
    board.mkdir(exist_ok=True)
    for cell in cells:
        link, target = board / names[cell.id], Path("..", "cells", cell.id, "run")
        # The run folder now, so the link never dangles (the trainer would make it anyway).
        (cell_dir(out, cell.id) / "run").mkdir(parents=True, exist_ok=True)
        try:
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            if link.is_symlink():  # a cell of an earlier grid under the same label
                link.unlink()
            link.symlink_to(target, target_is_directory=True)
        except OSError:
            continue


def prepare_cells(out: Path, grid: Grid, threads: int | None) -> tuple[list, list]:
    """Write cell.json and config.yaml of every unfinished cell, and the TensorBoard links;
    return (todo, done)."""
    todo, done = [], []
    for cell in grid.cells:
        cdir = cell_dir(out, cell.id)
        cdir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cdir / "cell.json", {"id": cell.id, "axes": cell.axes, "grid": grid.name})
        if is_done(cdir):
            done.append(cell)
            continue
        cfg = copy.deepcopy(cell.config)
        cfg.train.progress = False  # keep the executed notebooks small; the runner has its own bar
        if threads and cfg.train.threads == 0:
            cfg.train.threads = threads
        assert cell_hash(cfg) == cell.id  # run-only keys never change the identity
        atomic_write_text(cdir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        todo.append(cell)
    link_for_tensorboard(out, grid.cells)
    return todo, done


class Progress:
    def __init__(self, total: int, done: int, desc: str):
        self.done, self.failed, self.running = done, 0, 0
        self.bar = tqdm(total=total, initial=done, desc=desc, unit="cell", dynamic_ncols=True,
                        file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 10.0)
        self._post()

    def _post(self):
        self.bar.set_postfix_str(f"finished={self.done} failed={self.failed} running={self.running}")

    def start(self):
        self.running += 1
        self._post()

    def end(self, ok: bool):
        self.running -= 1
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self._post()

    def close(self):
        self.bar.close()


def _log(out: Path, line: str) -> None:
    with open(out / "runner.log", "a") as f:
        f.write(f"{_now()} {line}\n")


def _record_end(out: Path, cell, cdir: Path, rc: int | None, started: float, prog: Progress, host: str) -> bool:
    ok = rc == 0 and (cdir / "summary.json").exists()
    secs = round(time.time() - started, 1)
    if ok:
        write_status(cdir, state="done", finished=_now(), seconds=secs, error=None, host=host)
        _log(out, f"done   {cell.id} {cell.label} ({secs} s)")
    else:
        reason = _error_reason(cdir, rc)
        write_status(cdir, state="failed", finished=_now(), seconds=secs, error=reason, host=host)
        _log(out, f"FAILED {cell.id} {cell.label}: {reason.splitlines()[0] if reason else ''}")
        tqdm.write(f"cell {cell.id} ({cell.label}) failed: {reason.splitlines()[0] if reason else rc}"
                   f" (log: {cdir / 'log.txt'})", file=sys.stderr)
    prog.end(ok)
    return ok


def code_version() -> str:
    """Hash of the crossmatch_lite sources and the notebook runner: recorded per cell (not part
    of its identity), so `status` can tell when finished cells came from different code."""
    h = hashlib.sha256()
    for p in sorted(Path(crossmatch_lite.__file__).parent.rglob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:12]


def _start_status(cdir: Path, backend: str, notebook: Path) -> None:
    import hashlib

    st = read_status(cdir)
    write_status(cdir, state="running", started=_now(), attempts=int(st.get("attempts", 0)) + 1,
                 backend=backend, notebook=str(notebook), error=None, pid=os.getpid(), code=code_version(),
                 notebook_sha=hashlib.sha256(notebook.read_bytes()).hexdigest()[:12])


def _worker_env() -> dict:
    from .grid import PROJECT_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def _die_with_parent() -> None:
    """Linux: the worker (and so its kernel, which watches its parent) dies with the runner."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ---------------------------------------------------------------------------- local backend
def run_local(out: Path, todo: list, notebook: Path, jobs: int, prog: Progress) -> int:
    from .grid import PROJECT_ROOT

    pending, running, failed = deque(todo), {}, 0
    env = _worker_env()
    host = socket.gethostname()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                cell = pending.popleft()
                cdir = cell_dir(out, cell.id)
                _start_status(cdir, "local", notebook)
                _log(out, f"start  {cell.id} {cell.label}")
                log = open(cdir / "log.txt", "a")
                log.write(f"--- {_now()} attempt {read_status(cdir).get('attempts')} on {host}\n")
                log.flush()
                proc = subprocess.Popen([sys.executable, "-m", "ablations.worker", str(cdir), str(notebook)],
                                        cwd=str(PROJECT_ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
                running[cell.id] = (cell, proc, log, time.time())
                prog.start()
            time.sleep(0.2)
            for cid in list(running):
                cell, proc, log, started = running[cid]
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del running[cid]
                if not _record_end(out, cell, cell_dir(out, cid), rc, started, prog, host):
                    failed += 1
    except KeyboardInterrupt:
        for cell, proc, log, _ in running.values():
            proc.terminate()
        for cell, proc, log, _ in running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
            log.close()
            write_status(cell_dir(out, cell.id), state="interrupted", finished=_now())
        raise
    return failed


# ---------------------------------------------------------------------------- Ray backend
KEEP_OUT = {"latest.pt"}  # large, only needed to resume a half-trained cell on that node


def _ray_cell(config_text: str, notebook_name: str, notebook_bytes: bytes) -> dict:
    """Body of one Ray task: run the cell in a temporary folder and send its files back.

    Nothing but the project code is needed on the node (at the same path or installed):
    the config and the notebook travel with the task, the results with its return value.
    """
    tmp = Path(tempfile.mkdtemp(prefix="ablations_cell_"))
    try:
        cdir = tmp / "cell"
        cdir.mkdir()
        (cdir / "config.yaml").write_text(config_text)
        nb = tmp / notebook_name
        nb.write_bytes(notebook_bytes)
        with open(cdir / "log.txt", "w") as log:
            rc = subprocess.call([sys.executable, "-m", "ablations.worker", str(cdir), str(nb)],
                                 env=_worker_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        files = {}
        for p in sorted(cdir.rglob("*")):
            rel = str(p.relative_to(cdir))
            if p.is_file() and p.name not in KEEP_OUT and rel != "config.yaml":  # the driver has that one
                files[rel] = p.read_bytes()
        return {"rc": rc, "files": files, "host": socket.gethostname()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ray_init(address: str | None):
    try:
        import ray
    except ImportError:
        raise RunnerError("the Ray backend needs Ray: pip install -r requirements-ray.txt") from None
    from .grid import PROJECT_ROOT

    env_vars = {"PYTHONPATH": str(PROJECT_ROOT)}
    for k in ("CROSSMATCH_LITE_SMOKE",):
        if k in os.environ:
            env_vars[k] = os.environ[k]
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=False,
             include_dashboard=False if address is None else None, ignore_reinit_error=True)
    return ray


def run_ray(out: Path, todo: list, notebook: Path, address: str | None, resources: dict, prog: Progress) -> int:
    ray = _ray_init(address)
    task = ray.remote(_ray_cell).options(num_cpus=float(resources.get("cpus", 1)),
                                         num_gpus=float(resources.get("gpus", 0)), max_retries=0)
    nb_bytes = notebook.read_bytes()
    refs, failed = {}, 0
    try:
        for cell in todo:
            cdir = cell_dir(out, cell.id)
            _start_status(cdir, "ray", notebook)
            _log(out, f"submit {cell.id} {cell.label}")
            ref = task.remote((cdir / "config.yaml").read_text(), notebook.name, nb_bytes)
            refs[ref] = (cell, time.time())
            prog.start()
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in ready:
                cell, started = refs.pop(ref)
                cdir = cell_dir(out, cell.id)
                host = "?"
                try:
                    res = ray.get(ref)
                    host = res["host"]
                    for rel, data in res["files"].items():
                        dest = cdir / rel
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        atomic_write_bytes(dest, data)
                    rc = res["rc"]
                except Exception as e:  # noqa: BLE001 - a lost node or task is this cell's failure
                    atomic_write_text(cdir / "error.txt", f"Ray task failed: {type(e).__name__}: {e}\n")
                    rc = None
                if not _record_end(out, cell, cdir, rc, started, prog, host):
                    failed += 1
    except KeyboardInterrupt:
        for ref, (cell, _) in refs.items():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            write_status(cell_dir(out, cell.id), state="interrupted", finished=_now())
        raise
    finally:
        ray.shutdown()
    return failed


# ---------------------------------------------------------------------------- entry
@dataclass
class RunResult:
    total: int
    skipped: int
    ran: int
    failed: int


def run_grid(grid: Grid, out: str | Path, backend: str = "local", jobs: int = 1, address: str | None = None,
             notebook: str | None = None, cli_sets: list[str] = (), smoke: bool = False) -> RunResult:
    out = Path(out)
    with folder_lock(out):
        nb = resolve_notebook(notebook, out)
        write_manifest(out, grid, list(cli_sets), str(nb), smoke)
        if backend == "local":
            unfinished = sum(1 for c in grid.cells if not is_done(cell_dir(out, c.id)))
            threads = max(1, available_cores() // max(1, min(jobs, unfinished or 1)))
        else:
            threads = max(1, int(float(grid.resources.get("cpus", 1))))
        todo, done = prepare_cells(out, grid, threads)
        print(f"grid {grid.name}: {len(grid.cells)} cells ({grid.excluded} excluded), {len(done)} finished, "
              f"{len(todo)} to run [{backend}"
              + (f", {jobs} jobs x {threads} threads" if backend == "local" else "") + f"] -> {out}",
              file=sys.stderr)
        failed = 0
        if todo:
            prog = Progress(len(grid.cells), len(done), grid.name)
            try:
                if backend == "local":
                    failed = run_local(out, todo, nb, max(1, jobs), prog)
                elif backend == "ray":
                    failed = run_ray(out, todo, nb, address, grid.resources, prog)
                else:
                    raise RunnerError(f"unknown backend {backend!r}; use local or ray")
            finally:
                prog.close()
        return RunResult(len(grid.cells), len(done), len(todo), failed)
