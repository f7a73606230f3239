"""The compact training cache: written atomically, reused, rebuilt when data or size change."""
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from crossmatch_lite.data import cache as cache_mod
from crossmatch_lite.data import load_data

try:
    from crossmatch_lite.config import DataConfig
except ImportError:
    from types import SimpleNamespace as DataConfig


# Most official patients are absent from these tiny data sets; that warning is tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:acdc. some split entries")


def cfg(root, **kw):
    base = dict(name="acdc", root=str(root), labeled=1, size=16, split_file=None, cache=True)
    return DataConfig(**{**base, **kw})


def write_volume(path: Path, seed: int):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["image"] = rng.random((3, 20, 24))
        f["label"] = rng.integers(0, 4, (3, 20, 24), dtype=np.uint8)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data").mkdir()
    for k, p in enumerate(["patient099", "patient003", "patient002", "patient001"]):
        for frame in ("frame01", "frame02"):
            write_volume(tmp_path / "data" / f"{p}_{frame}.h5", k)
    return tmp_path


def load(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most official patients are absent from this tiny set
        return load_data(cfg(root, **kw), seed=0)


def entries(root, size):
    return {p.name: p.stat().st_mtime_ns for p in (root / "cache").glob(f"train_{size}_*")}


def test_written_once_then_mapped_and_reused(root):
    first = load(root)
    files = entries(root, 16)
    assert sorted(n.split(".", 1)[1] for n in files) == ["images.npy", "json", "labels.npy"]
    assert not [p for p in (root / "cache").iterdir() if p.name.startswith(".")]  # no temp files left
    second = load(root)
    assert entries(root, 16) == files  # same files, same mtimes: nothing rebuilt
    assert isinstance(second.train_images, np.memmap)  # mapped, not read into memory
    np.testing.assert_array_equal(first.train_images, second.train_images)
    np.testing.assert_array_equal(first.labeled_idx, second.labeled_idx)
    uncached = load(root, cache=False)
    np.testing.assert_array_equal(uncached.train_images, second.train_images)
    np.testing.assert_array_equal(uncached.train_labels, second.train_labels)


def test_new_size_builds_its_own_entry(root):
    load(root)
    files16 = entries(root, 16)
    d = load(root, size=24)
    assert d.train_images.shape[-2:] == (24, 24) and entries(root, 24)
    assert entries(root, 16) == files16  # both sizes stay valid side by side
    assert load(root).train_images.shape[-2:] == (16, 16) and entries(root, 16) == files16


def test_changed_data_invalidates(root):
    old = load(root)
    files = entries(root, 16)
    write_volume(root / "data" / "patient003_frame01.h5", 42)  # re-converted data
    new = load(root)
    assert not set(entries(root, 16)) & set(files)  # stale entry replaced, not kept
    assert not np.array_equal(old.train_images, new.train_images)


def test_interrupted_write_leaves_no_entry(root, monkeypatch):
    real_save = np.save

    def save_then_crash(f, arr):
        real_save(f, arr)
        if arr.dtype == np.uint8:  # the labels file, after the images were moved into place
            raise OSError("disk full")

    monkeypatch.setattr(cache_mod.np, "save", save_then_crash)
    with pytest.warns(UserWarning, match="could not write the training cache"):
        d = load_data(cfg(root, labeled=1), seed=0)  # training still gets its arrays
    assert d.train_images.shape[-1] == 16
    names = [p.name for p in (root / "cache").iterdir()]
    assert not [n for n in names if n.endswith(".json") or n.startswith(".")]  # never marked complete
    monkeypatch.undo()
    files_before = entries(root, 16)
    load(root)
    assert set(entries(root, 16)) >= set(files_before) and len(entries(root, 16)) == 3


def test_unwritable_cache_folder_falls_back(root):
    (root / "cache").write_text("not a folder")  # mkdir fails, like a read-only dataset
    with pytest.warns(UserWarning, match="continuing without it"):
        d = load_data(cfg(root), seed=0)
    assert d.train_images.shape[-1] == 16
