"""crossmatch_lite/data/toy.py and the toy datasets through it: deterministic, well-formed, and
splits that round-trip (each generator's own design: test_data_toy_acdc.py, test_data_toy_isic.py)."""
import json

import numpy as np
import pytest

from crossmatch_lite.data import SegData, load_data, toy_acdc, toy_isic

try:
    from crossmatch_lite.config import DataConfig
except ImportError:  # the data layer must not depend on the rest of the package to be tested
    from types import SimpleNamespace as DataConfig


def cfg(name, **kw):
    base = dict(name=name, root="", labeled=3, size=32, split_file=None, cache=False)
    return DataConfig(**{**base, **kw})


def assert_same(a: SegData, b: SegData):
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    np.testing.assert_array_equal(a.labeled_idx, b.labeled_idx)
    np.testing.assert_array_equal(a.unlabeled_idx, b.unlabeled_idx)
    assert a.split == b.split
    for ca, cb in zip(a.val_cases + a.test_cases, b.val_cases + b.test_cases):
        assert ca.id == cb.id and ca.spacing == cb.spacing
        np.testing.assert_array_equal(ca.image, cb.image)
        np.testing.assert_array_equal(ca.label, cb.label)


SETTINGS = {"toy_acdc": dict(labeled=3), "toy_isic": dict(labeled=0.1)}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def loads(request, tmp_path_factory):
    name = request.param
    a = load_data(cfg(name, **SETTINGS[name]), seed=0)
    toy_acdc.patient.cache_clear()  # regenerate, so "identical" is about the generator, not the cache
    toy_isic.image.cache_clear()
    b = load_data(cfg(name, **SETTINGS[name]), seed=0)
    path = tmp_path_factory.mktemp(name) / "split.json"
    path.write_text(json.dumps(a.split))
    c = load_data(cfg(name, labeled=99, split_file=str(path)), seed=123)  # split file wins over both
    return name, a, b, c


def test_same_seed_gives_identical_data(loads):
    _, a, b, _ = loads
    assert_same(a, b)


def test_split_file_round_trip_reproduces_everything(loads):
    _, a, _, c = loads
    assert_same(a, c)
    json.dumps(c.split)  # stays serialisable


def test_shapes_dtypes_ranges(loads):
    name, a, _, _ = loads
    n, ch = len(a.train_images), (1 if name == "toy_acdc" else 3)
    assert a.in_channels == ch and a.num_classes == len(a.class_names) and a.class_names[0] == "background"
    assert a.train_images.shape == (n, ch, 32, 32) and a.train_images.dtype == np.float16
    assert a.train_labels.shape == (n, 32, 32) and a.train_labels.dtype == np.uint8
    assert 0 <= float(a.train_images.min()) and float(a.train_images.max()) <= 1
    assert a.train_labels.max() == a.num_classes - 1
    assert a.labeled_idx.dtype == np.int64 and a.unlabeled_idx.dtype == np.int64
    assert not set(a.labeled_idx) & set(a.unlabeled_idx)
    assert len(a.labeled_idx) + len(a.unlabeled_idx) == n  # unlabeled = every other training slice
    lists = [set(a.split[k]) for k in ("labeled", "unlabeled", "val", "test")]
    assert sum(map(len, lists)) == len(set().union(*lists))  # pairwise disjoint
    for case in a.val_cases + a.test_cases:
        z = case.image.shape[0]
        assert case.image.dtype == np.float32 and case.image.shape[1] == ch and case.label.shape == (z, *case.image.shape[2:])
        assert case.label.dtype == np.uint8 and 0 <= case.image.min() and case.image.max() <= 1
        assert (case.spacing is None) == (name == "toy_isic")


def test_cases_are_private_copies():
    a = load_data(cfg("toy_acdc"), seed=0)
    before = a.test_cases[0].image.copy()
    assert before.max() > 0
    a.test_cases[0].image[:] = 0  # a caller scribbling on its arrays must not touch the next load
    b = load_data(cfg("toy_acdc"), seed=0)
    np.testing.assert_array_equal(b.test_cases[0].image, before)


@pytest.mark.parametrize("bad, message", [
    ({"labeled": ["p000"], "unlabeled": ["p000"], "val": [], "test": []}, "share"),
    ({"labeled": ["p000"], "unlabeled": [], "val": ["p000"], "test": []}, "share"),
    ({"labeled": [], "unlabeled": ["p001"], "val": [], "test": []}, "empty"),
    ({"dataset": "acdc", "labeled": ["p000"], "unlabeled": [], "val": [], "test": []}, "acdc"),
])
def test_bad_split_files_are_refused(tmp_path, bad, message):
    path = tmp_path / "split.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=message):
        load_data(cfg("toy_acdc", split_file=str(path)), seed=0)


def test_bad_labeled_and_unknown_name():
    with pytest.raises(ValueError, match="counts patients"):
        load_data(cfg("toy_acdc", labeled=0.5), seed=0)
    with pytest.raises(ValueError, match="training pool has 40"):
        load_data(cfg("toy_acdc", labeled=41), seed=0)
    with pytest.raises(ValueError, match="toy_acdc, toy_isic, acdc, isic2018"):
        load_data(cfg("nope"), seed=0)
