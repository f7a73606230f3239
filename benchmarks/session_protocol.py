"""The GPU session's last step: the paper's ACDC protocol in resumable, time-boxed chunks.

`configs/crossmatch.yaml` as it is (3 labeled patients, batch 12, resize 256, 30 000
iterations, validation every 500), trained by the package's own `Trainer` until the
session's deadline is near, so that the 30 000 iterations can be spread over sessions of
a fixed length. The Trainer has no time limit of its own, so the limit is kept here: its
`on_log` hook sees every logged row; where the next checkpoint (plus its validation, plus
the final evaluation when it is the last one) would not fit before the deadline, it stops
the run right there: at a validation row the Trainer has just written `latest.pt`; at any
other row the hook writes it, with the same content the Trainer saves (model, optimiser,
samplers, CPU and CUDA RNG states), so at most `train.log_every` iterations are ever lost
to a kill. Running the same folder again continues exactly where it stopped; the Trainer
refuses a folder whose config differs.

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
from crossmatch_lite.run.files import atomic_torch_save, atomic_write_json
from crossmatch_lite.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "crossmatch.yaml"
RUN_DIR_NAME = "protocol"
HISTORY = "session_history.json"
# Keys the Trainer lets differ between a run and its resumption (train.RESUME_FREE_KEYS):
# the only overrides applied to a resumed run's saved config.
RESUME_OVERRIDES = ("train.device", "train.threads", "train.progress")


class BudgetStop(Exception):
    """Raised from the Trainer's log hook to end this session's share of the run."""


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


# ---------------------------------------------------------------- the stop rule
class BudgetGuard:
    """The Trainer's on_log hook: measures s/iteration and validation time, stops in time."""

    def __init__(self, deadline: float, *, s_per_it: float | None, val_seconds: float,
                 finish_seconds: float, margin: float, stop_at: int | None = None,
                 on_checkpoint: Callable[[dict], None] | None = None):
        self.deadline, self.s_per_it = deadline, s_per_it
        self.val_seconds, self.finish_seconds, self.margin = val_seconds, finish_seconds, margin
        self.stop_at, self.on_checkpoint = stop_at, on_checkpoint
        self.trainer: Trainer | None = None
        self.last = None  # (iteration, time) of the previous row
        self.last_log = None  # (iteration, time) of the previous training row
        self.last_val_row: dict | None = None

    def __call__(self, row: dict) -> None:
        now, it = time.monotonic(), row["iteration"]
        t = self.trainer.cfg.train
        if "val_dice" in row:
            if self.last_log and self.last_log[0] == it:  # the row just before the validation
                self.val_seconds = now - self.last_log[1]
            self.last_val_row = row
            if self.on_checkpoint:
                self.on_checkpoint(row)
        else:
            if self.last and it > self.last[0]:
                # The latest window only: the first ones include compilation and warm-up.
                self.s_per_it = (now - self.last[1]) / (it - self.last[0])
            self.last_log = (it, now)
        self.last = (it, now)

        if it >= t.iterations or ("val_dice" not in row and it % t.val_every == 0):
            return  # the final evaluation, or a validation and checkpoint, comes next anyway
        if self.stop_at is not None and it >= self.stop_at:
            self._stop(row, f"stop requested at iteration {self.stop_at}")
        if self.s_per_it is None:
            return
        nxt = min(t.iterations, (it // t.val_every + 1) * t.val_every)
        need = (nxt - it) * self.s_per_it + self.val_seconds + (self.finish_seconds if nxt == t.iterations else 0)
        if now + need + self.margin > self.deadline:
            self._stop(row, f"the next checkpoint (iteration {nxt}) needs ~{need:.0f} s, "
                            f"{max(0.0, self.deadline - now):.0f} s left")

    def _stop(self, row: dict, why: str) -> None:
        if "val_dice" not in row:
            # Between checkpoints: save what the Trainer itself saves at one (its _state()),
            # so this session keeps every iteration it trained.
            atomic_torch_save(self.trainer._state(), self.trainer.out / "latest.pt")
        raise BudgetStop(why)


# ---------------------------------------------------------------- one session's share
def run_protocol(cfg, run_dir: Path, data, deadline: float, *, card: str, s_per_it: float | None = None,
                 val_seconds: float = 15.0, finish_seconds: float = 180.0, margin: float = 5.0,
                 stop_at: int | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / HISTORY
    history = json.loads(history_path.read_text()) if history_path.exists() else []
    entry = {"started": now_iso(), "card": card, "device": cfg.train.device, "status": "running"}
    history.append(entry)
    t0 = time.monotonic()
    progress = {"run_dir": str(run_dir), "iterations_total": cfg.train.iterations,
                "compile": cfg.train.compile}

    def record(status: str, trainer: Trainer) -> None:
        entry.update(status=status, from_iteration=start_it, to_iteration=trainer.iteration,
                     wall_seconds=round(time.monotonic() - t0, 1))
        atomic_write_json(history_path, history)
        done = trainer.iteration - start_it
        progress.update(status=status, iteration_start=start_it, iteration=trainer.iteration,
                        best_val_dice=trainer.best, best_iteration=trainer.best_iteration,
                        train_seconds_total=round(trainer.seconds, 1),
                        session_wall_seconds=entry["wall_seconds"],
                        iterations_per_s=round(done / entry["wall_seconds"], 2) if done and entry["wall_seconds"] else None,
                        last_val=guard.last_val_row, history=history)

    guard = BudgetGuard(deadline, s_per_it=s_per_it, val_seconds=val_seconds, finish_seconds=finish_seconds,
                        margin=margin, stop_at=stop_at)
    trainer = Trainer(cfg, run_dir, data=data, on_log=guard)
    guard.trainer = trainer
    latest = run_dir / "latest.pt"
    start_it = int(load_checkpoint(latest)["iteration"]) if latest.exists() else 0

    def checkpoint(row: dict) -> None:
        record("running", trainer)
        if on_progress:
            on_progress(dict(progress))
    guard.on_checkpoint = checkpoint

    try:
        summary = trainer.run()
    except BudgetStop as e:
        record("stopped_for_budget", trainer)
        progress["stop_reason"] = str(e)
    except BaseException:
        record("error", trainer)  # latest.pt still holds the last checkpoint
        raise
    else:
        record("finished", trainer)
        progress["summary"] = summary
    progress["run_dir_mb"] = folder_mb(run_dir)
    return progress
