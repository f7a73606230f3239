"""Who may write into a run folder, whether its contents belong to this run, and how the
trainer writes it (`RunFolder`).

Two guards, both checked before a single file of the folder is touched:
- an exclusive lock (`.lock`, flock): a second `train --out same` started while the first
  is running stops at once instead of interleaving its metrics rows and checkpoints;
- an identity check: the config in `config.yaml` / `latest.pt` and the data split must be
  those of this run. Paths (data.root, data.split_file, data.cache) are not part of a
  run's identity, so a moved dataset still resumes; the split lists and a fingerprint of
  the training arrays are, so other data under the same path does not.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import yaml

from ..config import ConfigError, Config, apply_dict, flatten, save_config, to_dict, yaml_load
from .checkpoints import CheckpointError, load_checkpoint
from .files import atomic_torch_save, atomic_write_json, atomic_write_text

# Keys that may change between a run and its resumption without changing the result.
RESUME_FREE_KEYS = ("train.device", "train.threads", "train.progress", "train.log_every", "train.tensorboard",
                    "train.max_minutes", "eval.")
# Where the data are read from, not what they are: compared by content instead.
PATH_KEYS = ("data.root", "data.split_file", "data.cache")
SPLIT_LISTS = ("labeled", "unlabeled", "val", "test")
LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; the identity check still protects finished runs
    fcntl = None


class RunMismatch(RuntimeError):
    """The run folder holds another run (other config, split or data)."""


class RunLocked(RuntimeError):
    """Another process is training into the same run folder."""


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder; refuse at once if another process has it.

    flock locks die with their process, so a run killed with -9 never leaves a stale lock.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunLocked(f"{out} is in use by another training process (pid {holder}); "
                                "wait for it to finish, or pass another --out folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def data_fingerprint(images: np.ndarray | list, labels: np.ndarray | list) -> str:
    """A hash of the training arrays as trained on: the same data give the same value
    whichever folder or cache they were read from. 3D data come as lists of volumes."""
    h = hashlib.blake2b(digest_size=16)
    arrays = [images, labels]
    if isinstance(images, list):
        arrays = list(images) + list(labels)
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        flat = arr.reshape(-1)
        step = max(1, (64 << 20) // max(1, arr.itemsize))  # bounded memory for memory-mapped caches
        for k in range(0, flat.size, step):
            h.update(np.ascontiguousarray(flat[k:k + step]).data)
    return h.hexdigest()


def normalised(config: dict) -> dict:
    """A saved config read through today's Config tree, so keys added since it was saved
    take their defaults instead of reading as differences."""
    cfg = Config()
    try:
        apply_dict(cfg, config)
    except (ConfigError, TypeError, AttributeError):
        return config
    return to_dict(cfg)


def config_diff(saved: dict, current: dict) -> list[str]:
    fa, fb = flatten(normalised(saved)), flatten(normalised(current))
    return [k for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and not k.startswith(RESUME_FREE_KEYS) and k not in PATH_KEYS]


def split_diff(saved: dict, current: dict) -> list[str]:
    return [k for k in SPLIT_LISTS if sorted(map(str, saved.get(k, []))) != sorted(map(str, current.get(k, [])))]


def _refuse(out: Path, what: str) -> RunMismatch:
    return RunMismatch(f"{out} holds a run with {what}; resume it with the same config and data, "
                       "or pass a new --out folder")


def check_identity(out: Path, config: dict, split: dict, fingerprint: str | None,
                   saved_config: dict | None = None, saved_split: dict | None = None,
                   saved_fingerprint: str | None = None) -> None:
    """Raise RunMismatch unless the folder's saved run is this one.

    saved_*: from a checkpoint; where absent, config.yaml and split.json are read.
    """
    if saved_config is None:
        saved_config = _read_yaml(out / "config.yaml")
    if saved_config is not None:
        diff = config_diff(saved_config, config)
        if diff:
            raise _refuse(out, f"a different config ({', '.join(diff[:8])}{' ...' if len(diff) > 8 else ''})")
    if saved_split is None:
        saved_split = _read_yaml(out / "split.json")  # JSON is YAML
    if isinstance(saved_split, dict):
        diff = split_diff(saved_split, split)
        if diff:
            raise _refuse(out, f"a different data split (lists {', '.join(diff)} differ)")
    if saved_fingerprint and fingerprint and saved_fingerprint != fingerprint:
        raise _refuse(out, "different training data (the data fingerprint differs: the files under "
                           "data.root changed, or data.size differs)")


def check_not_foreign(out: Path) -> None:
    """Refuse a folder that never held a run (no config.yaml, no latest.pt) but has a
    metrics.jsonl: its rows are someone else's, and a run would neither keep nor drop them
    rightly."""
    log = out / "metrics.jsonl"
    if log.exists() and not (out / "config.yaml").exists() and not (out / "latest.pt").exists():
        raise RunMismatch(f"{out} holds a metrics.jsonl but no run (no config.yaml or latest.pt); move that file "
                          "away, or pass a new --out folder")


def _read_yaml(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = yaml_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:  # torn or hand-edited: say so, don't guess
        raise RunMismatch(f"{path} cannot be read ({type(e).__name__}); restore it, or pass a new "
                          "--out folder") from None
    return data if isinstance(data, dict) else None


class TrainingDiverged(RuntimeError):
    """The loss or the weights turned non-finite; the message names the last good checkpoint."""


class RunFolder:
    """A run folder and its guarantees, as the trainer uses them.

    The trainer says what to keep; this object says where and how: under an exclusive lock
    (`locked`), only into a folder that holds this run or nothing (`begin`, the identity
    check), with every file written atomically (a kill leaves the previous version), and
    with metrics.jsonl cut back to the checkpoint it resumes from, so a resumed run's log
    is the log of an uninterrupted one. Checkpoints carry the run's config, split and a
    fingerprint of its training arrays, checked again on every resumption.

    `data` is the run's SegData: its `split` and training arrays (fingerprinted on first use).
    """

    def __init__(self, out: str | Path, cfg: Config, data):
        self.out, self.cfg, self.data = Path(out), cfg, data
        self.iteration_saved = 0  # the iteration latest.pt holds (0: none written or resumed)
        self._fingerprint: str | None = None

    latest = property(lambda self: self.out / "latest.pt")
    best = property(lambda self: self.out / "best.pt")
    summary = property(lambda self: self.out / "summary.json")

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.data.train_images, self.data.train_labels)
        return self._fingerprint

    def locked(self):
        return locked(self.out)

    def check(self, state: dict | None = None, fingerprint: bool = True) -> None:
        """RunMismatch unless the folder (config.yaml, split.json) or the checkpoint `state`
        holds this run. Checkpoints written before the split and fingerprint were stored
        fall back to split.json and skip the fingerprint."""
        state = state or {}
        check_identity(self.out, to_dict(self.cfg), self.data.split, self.fingerprint if fingerprint else None,
                       saved_config=state.get("config"), saved_split=state.get("split"),
                       saved_fingerprint=state.get("data_fingerprint"))

    def begin(self, device) -> tuple[dict | None, dict | None]:
        """Open the folder for training: (the latest.pt state to resume from, or None; the
        summary of a run that is already finished, or None). Writes config.yaml and
        split.json and drops metrics rows past the checkpoint; refuses another run's folder."""
        self.iteration_saved = 0
        self.check(fingerprint=False)  # config.yaml and split.json exist even without latest.pt
        check_not_foreign(self.out)
        state = None
        if self.latest.exists():
            try:
                state = load_checkpoint(self.latest, device)
            except CheckpointError as e:
                finished = self._finished_without_latest()
                if finished is not None:
                    print(f"warning: {e} The run had finished; its summary.json is returned.", file=sys.stderr)
                    return None, finished
                raise CheckpointError(f"{e} To restart this run from iteration 0, move {self.latest} away "
                                      "(best.pt and the logs are then replaced as training proceeds).") from None
            self.check(state)
            self.iteration_saved = state["iteration"]
        else:
            finished = self._finished_without_latest()
            if finished is not None:
                return None, finished
        self._truncate_metrics(self.iteration_saved)
        save_config(self.cfg, self.out / "config.yaml")
        atomic_write_json(self.out / "split.json", self.data.split)
        done = self.iteration_saved >= self.cfg.train.iterations and self.summary.exists()
        return state, json.loads(self.summary.read_text()) if done else None

    def _finished_without_latest(self) -> dict | None:
        """The summary of a finished run whose latest.pt was deleted (or never kept)."""
        try:
            summary = json.loads(self.summary.read_text()) if self.summary.exists() else None
        except ValueError:
            return None
        if not isinstance(summary, dict) or summary.get("iterations", 0) < self.cfg.train.iterations:
            return None
        if self.best.exists():
            state = load_checkpoint(self.best, "cpu")
            self.check({"config": state.get("config"), "data_fingerprint": state.get("data_fingerprint")})
        return summary

    def _truncate_metrics(self, iteration: int) -> None:
        """Drop log rows past the checkpoint: they will be produced again. A line torn by a
        kill mid-write is dropped too (it is past the checkpoint by construction)."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        keep = []
        for ln in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(ln)
            except ValueError:
                continue
            # Every row the loop writes names its iteration; one without is not this run's.
            if isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] <= iteration:
                keep.append(ln)
        atomic_write_text(path, "".join(ln + "\n" for ln in keep))

    @contextlib.contextmanager
    def metrics(self, *sinks: Callable[[dict], None] | None) -> Iterator[Callable[[dict], None]]:
        """A `log(row)` that appends the row to metrics.jsonl (flushed: a kill loses no
        finished row) and hands it to each sink (TensorBoard, a notebook's callback)."""
        with open(self.out / "metrics.jsonl", "a") as f:
            def log(row: dict) -> None:
                f.write(json.dumps(row) + "\n")
                f.flush()
                for sink in sinks:
                    if sink is not None:
                        sink(row)
            yield log

    def save_latest(self, state: dict) -> None:
        """latest.pt: `state` (the trainer's, with its "iteration") and this run's identity."""
        identity = {"config": to_dict(self.cfg), "data_fingerprint": self.fingerprint,
                    "split": {k: list(self.data.split.get(k, [])) for k in SPLIT_LISTS}}
        atomic_torch_save({**state, **identity}, self.latest)
        self.iteration_saved = state["iteration"]

    def save_best(self, weights: dict, iteration: int, val_dice: float) -> None:
        atomic_torch_save({"model": weights, "iteration": iteration, "val_dice": val_dice,
                           "config": to_dict(self.cfg), "data_fingerprint": self.fingerprint}, self.best)

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary, summary)

    def diverged(self, what: str) -> TrainingDiverged:
        """The one-line stop of a diverged run. Nothing non-finite is ever written, so the
        last checkpoint (if any) holds finite weights; the run's config is its identity,
        so the way on is a new run folder."""
        last = (f"{self.latest} (iteration {self.iteration_saved}) is the last checkpoint, with finite weights"
                if self.iteration_saved and self.latest.exists() else "no checkpoint was written")
        return TrainingDiverged(f"{what}. {last}. Lower train.lr (or check the data) and train into a new "
                                "--out: the same --out resumes only the same config.")
