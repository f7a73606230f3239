"""toy_acdc / toy_isic: deterministic, well-formed, and splits that round-trip."""
import json
import time

import numpy as np
import pytest

from crossmatch_lite.data import SegData, load_data, toy_acdc, toy_isic
from crossmatch_lite.data.toy import ACDC_COUNTS

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


def test_toy_acdc_design():
    one, three, seven = (load_data(cfg("toy_acdc", labeled=k), seed=5).split["labeled"] for k in (1, 3, 7))
    assert len(one) == 1 and len(three) == 3 and len(seven) == 7
    assert set(one) <= set(three) <= set(seven)  # nested like ACDC's official sets
    other = load_data(cfg("toy_acdc", labeled=3), seed=6)
    assert other.split["labeled"] != three  # the split seed picks the labeled patients...
    same = load_data(cfg("toy_acdc", labeled=3), seed=5)
    np.testing.assert_array_equal(other.test_cases[0].image, same.test_cases[0].image)  # ...never the data
    assert len(other.split["labeled"] + other.split["unlabeled"]) == 40
    assert len(other.val_cases) == 6 and len(other.test_cases) == 10
    assert all(8 <= c.image.shape[0] <= 10 for c in other.test_cases)


def test_cases_are_private_copies():
    a = load_data(cfg("toy_acdc"), seed=0)
    before = a.test_cases[0].image.copy()
    assert before.max() > 0
    a.test_cases[0].image[:] = 0  # a caller scribbling on its arrays must not touch the next load
    b = load_data(cfg("toy_acdc"), seed=0)
    np.testing.assert_array_equal(b.test_cases[0].image, before)


def test_toy_acdc_patients_are_learnable_and_varied():
    """Big, clearly visible structures; the patients differ mostly in global acquisition
    (brightness, contrast, gamma, blur, noise), never in which tissue is brighter."""
    toy_acdc.patient.cache_clear()
    t0 = time.perf_counter()
    pats = [toy_acdc.patient(i) for i in range(sum(ACDC_COUNTS.values()))]
    assert time.perf_counter() - t0 < 3.0  # generation stays fast
    blood_means = []
    for vol, lab, spacing, look in pats:
        assert vol.dtype == np.float32 and 0 <= vol.min() and vol.max() <= 1 and isinstance(look, str)
        assert set(np.unique(lab)) == {0, 1, 2, 3} and len(spacing) == 3
        base = lab[0]  # the basal slice: the heart should fill a fair share of the field of view
        assert (base > 0).mean() > 0.08
        myo = (lab == 2).sum(axis=(1, 2))
        lv = (lab == 3).sum(axis=(1, 2))
        # Mean ring thickness ~ area / circumference; at training size 64 (2/3 of native) >= 3 px.
        r_lv = np.sqrt(lv / np.pi)
        thickness = np.sqrt((myo + lv) / np.pi) - r_lv
        assert thickness.min() * 64 / toy_acdc.NATIVE >= 3
        blood, muscle = vol[lab == 3].mean(), vol[lab == 2].mean()
        assert blood > muscle + 0.05  # bright blood always: no inverted or dark-blood looks
        blood_means.append(blood)
    assert max(blood_means) > 2 * min(blood_means)  # but the global look varies a lot


def test_toy_isic_counts_and_fraction():
    d = load_data(cfg("toy_isic", labeled=12), seed=0)
    assert len(d.labeled_idx) == 12 and len(d.unlabeled_idx) == 288
    assert len(d.val_cases) == 40 and len(d.test_cases) == 80
    assert all(c.image.shape[0] == 1 for c in d.test_cases)


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
