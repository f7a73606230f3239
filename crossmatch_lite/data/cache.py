"""A compact on-disk copy of the resized training arrays, so reloads take a second.

Layout under <root>/cache/ for one key:
    train_<S>_<hash>.images.npy   (N, C, S, S) float16, plain .npy: np.load(mmap_mode="r") maps it
    train_<S>_<hash>.labels.npy   (N, S, S) uint8
    train_<S>_<hash>.json         what was cached (written last: its presence marks a complete entry)
The hash covers the cache format, S, and each source file's name, size and mtime, so
re-converted data, another split or another size never reads a stale entry. Every file is
written under a temporary name and moved into place with os.replace, so a crash or a
concurrent run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

FORMAT = 1


def file_signature(path: Path) -> list:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def cache_stem(cache_dir: Path, size: int, key: dict) -> Path:
    blob = json.dumps({"format": FORMAT, "size": size, **key}, sort_keys=True).encode()
    return cache_dir / f"train_{size}_{hashlib.sha1(blob).hexdigest()[:12]}"


def load_or_build(cache_dir: Path, size: int, key: dict,
                  build: Callable[[], tuple[np.ndarray, np.ndarray, dict]]):
    """(images, labels, info) from the cache, or from build() which is then cached.

    build() returns the arrays and a JSON-able info dict (e.g. slice counts per case)
    that is stored beside them and returned on later hits.
    """
    stem = cache_stem(cache_dir, size, key)
    hit = _read(stem)
    if hit is not None:
        return hit
    images, labels, info = build()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write(stem, images, labels, info)
    except OSError as e:  # a read-only dataset folder must not stop training
        warnings.warn(f"could not write the training cache in {cache_dir} ({e}); "
                      "continuing without it (set data.cache=false to silence this)", stacklevel=3)
        return images, labels, info
    _remove_stale(cache_dir, size, keep=stem)
    return _read(stem) or (images, labels, info)


def _paths(stem: Path) -> tuple[Path, Path, Path]:
    return (stem.with_name(stem.name + ".images.npy"), stem.with_name(stem.name + ".labels.npy"),
            stem.with_name(stem.name + ".json"))


def _read(stem: Path):
    img_p, lab_p, meta_p = _paths(stem)
    if not (meta_p.is_file() and img_p.is_file() and lab_p.is_file()):
        return None
    try:
        meta = json.loads(meta_p.read_text())
        images = np.load(img_p, mmap_mode="r")
        labels = np.load(lab_p, mmap_mode="r")
    except (OSError, ValueError):
        return None  # unreadable entry: rebuild it
    if list(images.shape) != meta["images_shape"] or list(labels.shape) != meta["labels_shape"]:
        return None
    return images, labels, meta["info"]


def _atomic_save(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write(stem: Path, images: np.ndarray, labels: np.ndarray, info: dict) -> None:
    img_p, lab_p, meta_p = _paths(stem)

    def save_npy(arr):
        def write(tmp):
            with open(tmp, "wb") as f:  # a file object stops np.save from appending ".npy"
                np.save(f, arr)
        return write

    _atomic_save(img_p, save_npy(images))
    _atomic_save(lab_p, save_npy(labels))
    meta = {"images_shape": list(images.shape), "labels_shape": list(labels.shape), "info": info}
    _atomic_save(meta_p, lambda tmp: tmp.write_text(json.dumps(meta)))


def _remove_stale(cache_dir: Path, size: int, keep: Path) -> None:
    """Older entries for the same size are superseded; other sizes stay valid."""
    for p in cache_dir.glob(f"train_{size}_*"):
        if not p.name.startswith(keep.name + "."):
            try:
                p.unlink()
            except OSError:
                pass
