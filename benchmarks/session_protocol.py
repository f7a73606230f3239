"""The GPU session's last step: the paper's ACDC protocol in resumable, time-boxed chunks.

`configs/crossmatch.yaml` as it is (3 labeled patients, batch 12, resize 256, 30 000
iterations, validation every 500), trained by the package's own `Trainer` until the
session's deadline is near, so that the 30 000 iterations can be spread over sessions of
a fixed length. The deadline becomes the Trainer's `train.max_minutes`, computed once
before the run with what must still fit after it (time_limit): past it the Trainer saves
`latest.pt` of the iteration it is at (model, optimiser, samplers, CPU and CUDA RNG
states) and returns a summary marked "stopped". Running the same folder again continues
exactly where it stopped; the limit is not part of the run's identity, and the Trainer
refuses a folder whose config otherwise differs. Progress is recorded at every validation.

The run folder holds only what the Trainer writes (config, split, metrics, latest.pt,
best.pt, summary.json) plus `session_history.json` (one entry per session: card,
iterations, seconds); the data and their cache live elsewhere.
"""
from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from crossmatch_lite.run.checkpoints import load_checkpoint
from crossmatch_lite.config import load_config
from crossmatch_lite.run.files import atomic_write_json
from crossmatch_lite.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "crossmatch.yaml"
RUN_DIR_NAME = "protocol"
HISTORY = "session_history.json"


# The end counts as within reach this session when a run this much faster than the
# estimate would reach it (time_limit).
REACH_SLACK = 0.8


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6, 2)


# ---------------------------------------------------------------- where the run lives
def find_run_dir(src: Path) -> Path:
    """A run folder (has config.yaml), or a session output folder holding one."""
    src = Path(src)
    for cand in (src, src / RUN_DIR_NAME):
        if (cand / "config.yaml").is_file():
            return cand
    raise FileNotFoundError(
        f"{src} is neither a protocol run folder (config.yaml, latest.pt) nor a session output "
        f"folder with one in {RUN_DIR_NAME}/; pass the folder a previous session wrote")


def adopt_run(src: Path, dst: Path) -> Path:
    """Copy a previous session's run folder into this session's output, so that each
    session's output is whole (the previous one stays as it was).

    The previous output may be read-only (an archived copy): copy the bytes, not the
    permissions."""
    src, dst = find_run_dir(src).resolve(), Path(dst)
    if dst.resolve() == src:
        return dst
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} already holds a run; pass an empty --out to resume {src} into it")
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
    return dst


def protocol_config(run_dir: Path, device: str, threads: int, sets: list[str], compile_: bool,
                    data_root: str | None):
    """A new run: the preset plus `sets`; an existing one: its saved config, only the keys
    that may differ on resumption overridden."""
    base = [f"train.device={device}", f"train.threads={threads}", "train.progress=false"]
    saved = Path(run_dir) / "config.yaml"
    if saved.exists():
        return load_config(str(saved), base), True
    new = base + [f"train.compile={'true' if compile_ else 'false'}"]
    if data_root is not None:
        new.append(f"data.root={data_root}")
    return load_config(str(PRESET), new + list(sets)), False


# ---------------------------------------------------------------- the time limit
def time_limit(t, start_it: int, left: float, *, s_per_it: float | None, val_seconds: float,
               finish_seconds: float, margin: float) -> dict:
    """train.max_minutes for this session's share of the run, computed once before it starts.

    The Trainer checks its limit after each iteration, and after that iteration's validation
    when it has one, so the run may go past the limit by one iteration and one validation:
    both are kept out of it, with `margin` for estimates that are off. After the last
    iteration the final evaluation runs whatever the limit, so it is kept out too when the
    end may be reached this session (or no s/iteration estimate tells): the chunk that
    reaches it then also finishes it within the budget. Where the end is out of reach,
    reserving it would only shorten the chunk."""
    in_flight = (s_per_it or 0.0) + val_seconds
    reach = True
    if s_per_it is not None:
        vals_left = t.iterations // t.val_every - start_it // t.val_every
        to_end = (t.iterations - start_it) * s_per_it + vals_left * val_seconds
        # "Within reach" errs on the side of reserving: the estimate comes from the speed
        # step or earlier sessions, and a faster run that reached the end unreserved would
        # overrun the budget by the whole final evaluation.
        reach = REACH_SLACK * to_end <= left - margin - in_flight
    reserve = margin + in_flight + (finish_seconds if reach else 0.0)
    return {"max_minutes": round((left - reserve) / 60.0, 3), "left_s": round(left, 1),
            "reserve_s": round(reserve, 1), "end_within_reach": reach, "s_per_it_estimate": s_per_it}


# ---------------------------------------------------------------- one session's share
def resume_point(latest: Path) -> tuple[int, float | None]:
    """The iteration a run resumes from, and its earlier sessions' training s/iteration."""
    if not latest.exists():
        return 0, None
    state = load_checkpoint(latest)
    it = int(state["iteration"])
    return it, (state.get("seconds", 0.0) / it or None) if it else None


def run_protocol(cfg, run_dir: Path, data, deadline: float, *, card: str, s_per_it: float | None = None,
                 val_seconds: float = 15.0, finish_seconds: float = 180.0, margin: float = 5.0,
                 max_minutes: float | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Train until the deadline is near, or to the end and its final evaluation; `max_minutes`
    lowers the limit (tests: a tiny one trains one iteration). Returns the step's JSON."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    start_it, pace = resume_point(run_dir / "latest.pt")
    s_per_it = s_per_it if s_per_it is not None else pace
    history_path = run_dir / HISTORY
    history = json.loads(history_path.read_text()) if history_path.exists() else []
    entry = {"started": now_iso(), "card": card, "device": cfg.train.device, "status": "running"}
    t0 = time.monotonic()
    progress = {"run_dir": str(run_dir), "iterations_total": cfg.train.iterations,
                "compile": cfg.train.compile, "last_val": None}

    def record(status: str) -> None:
        entry.update(status=status, from_iteration=start_it, to_iteration=trainer.iteration,
                     wall_seconds=round(time.monotonic() - t0, 1))
        atomic_write_json(history_path, history)
        done, wall = trainer.iteration - start_it, entry["wall_seconds"]
        progress.update(status=status, iteration_start=start_it, iteration=trainer.iteration,
                        best_val_dice=trainer.best, best_iteration=trainer.best_iteration,
                        train_seconds_total=round(trainer.seconds, 1), session_wall_seconds=wall,
                        iterations_per_s=round(done / wall, 2) if done and wall else None, history=history)

    def on_log(row: dict) -> None:
        if "val_dice" in row:  # a validation: the Trainer has just written latest.pt
            progress["last_val"] = row
            record("running")
            if on_progress:
                on_progress(dict(progress))

    trainer = Trainer(cfg, run_dir, data=data, on_log=on_log)
    # Measured after building the Trainer: the limit counts from Trainer.run().
    limit = time_limit(cfg.train, start_it, deadline - time.monotonic(), s_per_it=s_per_it,
                       val_seconds=val_seconds, finish_seconds=finish_seconds, margin=margin)
    if max_minutes is not None:
        limit["max_minutes"] = min(limit["max_minutes"], max_minutes)
    progress["time_limit"] = limit
    if limit["max_minutes"] <= 0:
        return {**progress, "status": "skipped",
                "reason": f"{limit['left_s']:.0f} s left, {limit['reserve_s']:.0f} s to keep in reserve"}
    # Always set: a resumed run's saved config holds the previous session's limit.
    cfg.train.max_minutes = limit["max_minutes"]
    history.append(entry)
    try:
        summary = trainer.run()
    except BaseException:
        record("error")  # latest.pt still holds the last checkpoint
        raise
    if summary.get("stopped"):
        record("stopped_for_budget")
        progress["stop_reason"] = f"{summary['stopped']}: train.max_minutes={cfg.train.max_minutes:g}"
    else:
        record("finished")
        progress["summary"] = summary
    progress["run_dir_mb"] = folder_mb(run_dir)
    return progress
