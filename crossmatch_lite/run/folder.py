"""Who may write into a run folder, and whether its contents belong to this run.

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
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from ..config import ConfigError, Config, apply_dict, flatten, to_dict, yaml_load

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
