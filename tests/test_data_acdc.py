"""ACDC reader: the official split lists, the HDF5 layout, partial data and missing data."""
import json
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from crossmatch_lite.data import load_data
from crossmatch_lite.data.acdc import spacing_table
from crossmatch_lite.data.splitting import read_id_list

try:
    from crossmatch_lite.config import DataConfig
except ImportError:
    from types import SimpleNamespace as DataConfig

from sample_data import SAMPLE_DATA as SHARED
SAMPLE_ZIP = SHARED / "acdc" / "ACDC-h5-sample.zip"


def cfg(root, **kw):
    base = dict(name="acdc", root=str(root), labeled=3, size=32, split_file=None, cache=False)
    return DataConfig(**{**base, **kw})


def ids(spec: str) -> list[str]:
    out = []
    for tok in spec.split():
        a, _, b = tok.partition("-")
        out += [f"patient{i:03d}" for i in range(int(a), int(b or a) + 1)]
    return out


# The lists as the issue states them, typed independently of the shipped files.
TRAIN = ids("003 004 005 006 009 010 012 014-018 020 021 023 025-027 029 031 032 034-038 040-044 046-051 "
            "053-058 060-063 067 069-074 076 077 079 086 088-092 094-100")
VAL = ids("002 019 028 030 039 045 078 082 085 087")
TEST = ids("001 007 008 011 013 022 024 033 052 059 064-066 068 075 080 081 083 084 093")
LABELED = {1: ids("099"), 3: ids("038 050 099"), 7: ids("021 038 049 050 058 099 100")}


def test_shipped_split_lists_are_the_official_ones():
    assert read_id_list("acdc_train") == TRAIN and len(TRAIN) == 70
    assert read_id_list("acdc_val") == VAL and len(VAL) == 10
    assert read_id_list("acdc_test") == TEST and len(TEST) == 20
    assert sorted(TRAIN + VAL + TEST) == ids("001-100")
    for n, lab in LABELED.items():
        assert read_id_list(f"acdc_labeled_{n}") == lab and set(lab) <= set(TRAIN)


def test_spacing_table_covers_all_training_volumes():
    table = spacing_table()
    assert len(table) == 200
    assert table["patient001_frame01"] == (10.0, 1.5625, 1.5625)
    assert all(z >= 5 and y == x and 0.7 < y < 2 for z, y, x in table.values())


def write_volume(folder: Path, case: str, z: int, rng, spacing=None):
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / f"{case}.h5", "w") as f:
        f["image"] = rng.random((z, 20, 24))
        f["label"] = rng.integers(0, 4, (z, 20, 24), dtype=np.uint8)
        if spacing:
            f.attrs["spacing"] = spacing


@pytest.fixture
def fake_acdc(tmp_path):
    """A tiny ACDC with the official 3 labeled patients, 2 more train, 1 val and 1 test patient."""
    rng = np.random.default_rng(0)
    for k, p in enumerate(ids("038 050 099 003 004 002 001")):
        for frame in ("frame01", "frame02"):
            write_volume(tmp_path / "data", f"{p}_{frame}", 3 + k % 2, rng)
    return tmp_path


def test_reads_layout_and_official_labeled_set(fake_acdc):
    with pytest.warns(UserWarning, match="missing"):
        d = load_data(cfg(fake_acdc), seed=0)
    assert d.split["labeled"] == LABELED[3]
    assert d.split["unlabeled"] == ids("003 004") and d.split["val"] == ids("002") and d.split["test"] == ids("001")
    assert [c.id for c in d.test_cases] == ["patient001_frame01", "patient001_frame02"]
    assert d.train_images.shape[1:] == (1, 32, 32) and d.train_images.dtype == np.float16
    # labeled slices are exactly those of both frames of the 3 labeled patients
    assert len(d.labeled_idx) == 2 * (3 + 4 + 3) and len(d.unlabeled_idx) == 2 * (4 + 3)
    assert d.test_cases[0].spacing == spacing_table()["patient001_frame01"]
    with h5py.File(fake_acdc / "data" / "patient001_frame01.h5") as f:
        np.testing.assert_array_equal(d.test_cases[0].image[:, 0], f["image"][()].astype(np.float32))
        np.testing.assert_array_equal(d.test_cases[0].label, f["label"][()])


def test_h5_spacing_attribute_wins(fake_acdc):
    write_volume(fake_acdc / "data", "patient001_frame01", 3, np.random.default_rng(1), spacing=(5.0, 1.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = load_data(cfg(fake_acdc), seed=0)
    assert d.test_cases[0].spacing == (5.0, 1.0, 1.0)


def test_other_counts_are_seeded_and_split_file_round_trips(fake_acdc, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_data(cfg(fake_acdc, labeled=2), seed=4)
        assert a.split["labeled"] == load_data(cfg(fake_acdc, labeled=2), seed=4).split["labeled"]
    path = tmp_path_factory.mktemp("split") / "split.json"
    path.write_text(json.dumps(a.split))
    b = load_data(cfg(fake_acdc, labeled=7, split_file=str(path)), seed=99)  # nothing missing now: no warning
    assert b.split == a.split
    np.testing.assert_array_equal(a.labeled_idx, b.labeled_idx)
    np.testing.assert_array_equal(a.train_images, b.train_images)


def test_split_file_may_name_single_volumes(fake_acdc, tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"labeled": ["patient099"], "unlabeled": ["patient003_frame02"],
                                "val": ["patient002_frame01"], "test": ["patient001", "patient050"]}))
    d = load_data(cfg(fake_acdc, split_file=str(path)), seed=0)
    assert [c.id for c in d.val_cases] == ["patient002_frame01"]
    assert [c.id for c in d.test_cases] == ["patient001_frame01", "patient001_frame02",
                                            "patient050_frame01", "patient050_frame02"]
    assert len(d.unlabeled_idx) == 4  # patient003 frame02 only


def test_missing_data_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_data(cfg(tmp_path / "nowhere"), seed=0)
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "data") in msg
    assert f"python -m data_download acdc --dest {tmp_path / 'nowhere'}" in msg


@pytest.fixture(scope="module")
def real_sample(tmp_path_factory):
    if not SAMPLE_ZIP.is_file():
        pytest.skip(f"{SAMPLE_ZIP} not present")
    dest = tmp_path_factory.mktemp("acdc_sample")
    with zipfile.ZipFile(SAMPLE_ZIP) as z:
        z.extractall(dest)
    return dest / "ACDC"


def test_real_sample_partial_data(real_sample):
    # Only patients 001-003 exist: warn, name what is missing, and train on what is there.
    with pytest.warns(UserWarning) as record:
        d = load_data(cfg(real_sample, labeled=3, size=64), seed=0)
    text = " ".join(str(w.message) for w in record)
    assert "labeled: 3 missing (patient038, patient050, patient099)" in text
    assert "unlabeled: 66 missing" in text and "val: 9 missing" in text and "test: 19 missing" in text
    assert d.split["labeled"] == ["patient003"] and d.split["val"] == ["patient002"] and d.split["test"] == ["patient001"]
    vol = d.test_cases[0]
    assert vol.id == "patient001_frame01" and vol.image.shape == (10, 1, 256, 216) and vol.label.max() == 3
    assert vol.spacing == (10.0, 1.5625, 1.5625)
    assert 0 <= vol.image.min() and vol.image.max() == 1  # min-max normalised per volume
    with h5py.File(real_sample / "data" / "patient003_frame01.h5") as f:
        n01 = f["image"].shape[0]
        # the slice files hold the same data, numbered from 1: slice_k is volume index k-1
        with h5py.File(real_sample / "data" / "slices" / "patient003_frame01_slice_1.h5") as s:
            np.testing.assert_array_equal(f["image"][0], s["image"][()])
    assert len(d.unlabeled_idx) == 0 and d.train_images.shape == (len(d.labeled_idx), 1, 64, 64)
    assert d.train_labels[:n01].max() == 3


def test_nan_in_a_volume_is_refused_with_file_and_count(fake_acdc):
    """Test volumes are read for evaluation only: a NaN there was scored without a word."""
    from crossmatch_lite.data import DataError

    path = fake_acdc / "data" / "patient001_frame02.h5"
    with h5py.File(path, "r+") as f:
        image = f["image"][()]
        image[0, :2, :3] = np.nan
        f["image"][...] = image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"patient001_frame02\.h5: image holds 6 non-finite value\(s\).*data_download"):
            load_data(cfg(fake_acdc), seed=0)
