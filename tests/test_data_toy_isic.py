"""crossmatch_lite/data/toy_isic.py: synthetic lesion photographs in ISIC's split sizes."""
import numpy as np

from crossmatch_lite.config import DataConfig
from crossmatch_lite.data import load_data


def cfg(name, **kw):
    base = dict(name=name, root="", labeled=3, size=32, split_file=None, cache=False)
    return DataConfig(**{**base, **kw})


def test_toy_isic_counts_and_fraction():
    d = load_data(cfg("toy_isic", labeled=12), seed=0)
    assert len(d.labeled_idx) == 12 and len(d.unlabeled_idx) == 288
    assert len(d.val_cases) == 40 and len(d.test_cases) == 80
    assert all(c.image.shape[0] == 1 for c in d.test_cases)


def test_toy_isic_images_are_rgb_photographs_with_binary_masks():
    d = load_data(cfg("toy_isic", labeled=12), seed=0)
    assert (d.in_channels, d.num_classes, d.class_names[0]) == (3, 2, "background")
    assert d.train_images.shape[1:] == (3, 32, 32) and d.train_labels.shape[1:] == (32, 32)
    assert 0 <= d.train_images.min() and d.train_images.max() <= 1
    assert set(np.unique(d.train_labels)) == {0, 1}
