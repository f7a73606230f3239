"""ISIC 2018 reader on tiny HDF5 files written here, in data_download's layout."""
import json

import h5py
import numpy as np
import pytest

from crossmatch_lite.data import load_data

try:
    from crossmatch_lite.config import DataConfig
except ImportError:
    from types import SimpleNamespace as DataConfig

COUNTS = {"train": 10, "val": 3, "test": 4}


def cfg(root, **kw):
    base = dict(name="isic2018", root=str(root), labeled=0.3, size=16, split_file=None, cache=False,
                isic_split="official")
    return DataConfig(**{**base, **kw})


def write_part(root, part, n, start, rng, mask_max=1):
    with h5py.File(root / f"{part}.h5", "w") as f:
        f["images"] = rng.integers(0, 256, (n, 20, 24, 3), dtype=np.uint8)
        f["masks"] = (rng.random((n, 20, 24)) > 0.5).astype(np.uint8) * mask_max
        f["ids"] = np.array([f"ISIC_{i:07d}" for i in range(start, start + n)], dtype="S")
        f["orig_sizes"] = np.tile([[600, 800]], (n, 1))


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    start = 0
    for part, n in COUNTS.items():
        write_part(tmp_path, part, n, start, rng)
        start += n
    return tmp_path


def test_reads_parts_and_labeled_fraction(root):
    d = load_data(cfg(root), seed=0)
    assert (d.num_classes, d.in_channels, d.class_names) == (2, 3, ["background", "lesion"])
    assert len(d.labeled_idx) == 3 and len(d.unlabeled_idx) == 7
    assert d.train_images.shape == (10, 3, 16, 16) and d.train_images.dtype == np.float16
    assert d.train_labels.shape == (10, 16, 16) and set(np.unique(d.train_labels)) <= {0, 1}
    assert [c.id for c in d.val_cases] == ["ISIC_0000010", "ISIC_0000011", "ISIC_0000012"]
    case = d.test_cases[0]
    assert case.image.shape == (1, 3, 20, 24) and case.image.dtype == np.float32 and case.spacing is None
    with h5py.File(root / "test.h5") as f:
        np.testing.assert_allclose(case.image[0].transpose(1, 2, 0), f["images"][0] / 255, atol=1e-6)
        np.testing.assert_array_equal(case.label[0], f["masks"][0])
    assert len(load_data(cfg(root, labeled=4), seed=0).labeled_idx) == 4  # >= 1: a count


def test_seeded_split_round_trips(root, tmp_path_factory):
    a = load_data(cfg(root), seed=1)
    assert a.split["labeled"] == load_data(cfg(root), seed=1).split["labeled"]
    assert a.split["labeled"] != load_data(cfg(root), seed=2).split["labeled"]
    path = tmp_path_factory.mktemp("s") / "split.json"
    path.write_text(json.dumps(a.split))
    b = load_data(cfg(root, labeled=0.9, split_file=str(path)), seed=7)
    assert b.split == a.split
    np.testing.assert_array_equal(a.labeled_idx, b.labeled_idx)
    np.testing.assert_array_equal(a.train_images, b.train_images)


def test_masks_stored_as_255_are_read_as_ones(tmp_path):
    write_part(tmp_path, "train", 4, 0, np.random.default_rng(0), mask_max=255)
    with pytest.warns(UserWarning):
        d = load_data(cfg(tmp_path, labeled=1), seed=0)
    assert d.train_labels.max() == 1


def test_missing_val_and_test_are_reported(root):
    (root / "val.h5").unlink()
    (root / "test.h5").unlink()
    with pytest.warns(UserWarning) as rec:
        d = load_data(cfg(root), seed=0)
    text = " ".join(str(w.message) for w in rec)
    assert str(root / "val.h5") in text and str(root / "test.h5") in text
    assert "python -m data_download isic2018" in text
    assert d.val_cases == [] and d.test_cases == []


def test_missing_train_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_data(cfg(tmp_path), seed=0)
    assert str(tmp_path / "train.h5") in str(e.value)
    assert f"python -m data_download isic2018 --dest {tmp_path}" in str(e.value)


def test_cache_works_for_isic_too(root):
    a = load_data(cfg(root, cache=True), seed=0)
    b = load_data(cfg(root, cache=True), seed=0)
    assert isinstance(b.train_images, np.memmap)
    np.testing.assert_array_equal(a.train_images, b.train_images)


def test_nan_in_a_float_image_is_refused_with_file_and_count(root):
    from crossmatch_lite.data import DataError

    with h5py.File(root / "test.h5", "r+") as f:
        images = f["images"][()].astype(np.float32)
        images[2, 0, :4] = np.nan
        del f["images"]
        f["images"] = images
    with pytest.raises(DataError, match=r"test\.h5: image ISIC_0000015 holds 12 non-finite value\(s\)"):
        load_data(cfg(root), seed=0)


# ---------------------------------------------------------------- the committed split
def committed(name):
    from crossmatch_lite.data.splitting import read_id_list
    return read_id_list(f"isic_{name}")


def test_committed_split_sizes_nesting_and_regeneration():
    from crossmatch_lite.data.make_isic_split import carve

    lists = {k: committed(k) for k in ("train", "val", "test", "labeled_5pct", "labeled_10pct")}
    assert {k: len(v) for k, v in lists.items()} == {
        "train": 1400, "val": 200, "test": 400, "labeled_5pct": 70, "labeled_10pct": 140}
    everything = lists["train"] + lists["val"] + lists["test"]
    assert len(set(everything)) == 2000  # disjoint
    assert set(lists["labeled_5pct"]) < set(lists["labeled_10pct"]) < set(lists["train"])
    assert carve(everything) == lists  # the shipped lists are what the script carves


def write_ids(root, part, ids, rng):
    n = len(ids)
    with h5py.File(root / f"{part}.h5", "w") as f:
        f["images"] = rng.integers(0, 256, (n, 20, 24, 3), dtype=np.uint8)
        f["masks"] = (rng.random((n, 20, 24)) > 0.5).astype(np.uint8)
        f["ids"] = np.array(ids, dtype="S")
        f["orig_sizes"] = np.tile([[600, 800]], (n, 1))


def carved_cfg(root, **kw):
    return cfg(root, **{"isic_split": "carved", "labeled": 0.05, **kw})


def test_carved_split_is_the_default_reads_train_h5_only_and_says_so(tmp_path, capsys):
    lab5, lab10 = committed("labeled_5pct"), committed("labeled_10pct")
    only10 = [i for i in lab10 if i not in lab5][:2]
    unlab = [i for i in committed("train") if i not in lab10][:6]
    val, test = committed("val")[:3], committed("test")[:4]
    outside = ["ISIC_0099990", "ISIC_0099991"]  # a full download's images beyond the 2,000
    write_ids(tmp_path, "train", sorted(lab5[:2] + only10 + unlab + val + test + outside),
              np.random.default_rng(0))
    write_ids(tmp_path, "val", ["ISIC_0036000"], np.random.default_rng(1))  # official: not used
    assert DataConfig.__dataclass_fields__["isic_split"].default == "carved"
    with pytest.warns(UserWarning) as rec:
        d = load_data(carved_cfg(tmp_path), seed=3)
    text = " ".join(str(w.message) for w in rec)
    assert "2 image(s) of train.h5 are not in the committed split" in text and "ISIC_0099990" in text
    assert d.split["labeled"] == sorted(lab5[:2])  # the committed 5 % list, whatever the seed
    assert d.split["unlabeled"] == sorted(only10 + unlab)
    assert [c.id for c in d.val_cases] == val and [c.id for c in d.test_cases] == test
    assert d.split["split_source"] == "carved"
    err = capsys.readouterr().err
    assert err.count("isic2018 split: carved") == 1 and "val.h5 not used" in err
    assert "10 train (2 labeled), 3 val, 4 test" in err
    ten = load_data(carved_cfg(tmp_path, labeled=0.1), seed=0)
    assert ten.split["labeled"] == sorted(lab5[:2] + only10)  # the 10 % list holds the 5 %


def test_carved_split_without_its_labeled_images_draws_from_those_present(tmp_path):
    lab10 = set(committed("labeled_10pct"))
    train = [i for i in committed("train") if i not in lab10][:10]
    write_ids(tmp_path, "train", sorted(train + committed("val")[:2] + committed("test")[:2]),
              np.random.default_rng(0))
    with pytest.warns(UserWarning, match="drew 1 of the 10 training images present"):
        d = load_data(carved_cfg(tmp_path), seed=0)
    assert len(d.split["labeled"]) == 1 and len(d.split["unlabeled"]) == 9


def test_official_split_stays_reachable(root, capsys):
    d = load_data(cfg(root, isic_split="official"), seed=0)
    assert d.split["split_source"] == "official" and len(d.test_cases) == COUNTS["test"]
    assert "isic2018 split: official" in capsys.readouterr().err
