"""crossmatch_lite/data/toy_acdc.py: synthetic cardiac patients laid out like ACDC's, with
nested labeled sets and structures a small UNet can learn."""
import numpy as np

from crossmatch_lite.config import DataConfig
from crossmatch_lite.data import load_data, toy_acdc
from crossmatch_lite.data.toy import ACDC_COUNTS


def cfg(name, **kw):
    base = dict(name=name, root="", labeled=3, size=32, split_file=None, cache=False)
    return DataConfig(**{**base, **kw})


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


def test_toy_acdc_patients_are_learnable_and_varied():
    """Big, clearly visible structures; the patients differ mostly in global acquisition
    (brightness, contrast, gamma, blur, noise), never in which tissue is brighter."""
    toy_acdc.patient.cache_clear()
    pats = [toy_acdc.patient(i) for i in range(sum(ACDC_COUNTS.values()))]
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
