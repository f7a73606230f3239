"""crossmatch_lite/data/base.py: SegData refuses a broken reader's output at once, naming it."""
import numpy as np
import pytest

from crossmatch_lite.data.base import Case, SegData


def segdata(**kw):
    base = dict(name="mine", num_classes=2, in_channels=1, class_names=["background", "lesion"],
                train_images=np.zeros((4, 1, 8, 8), np.float16), train_labels=np.zeros((4, 8, 8), np.uint8),
                labeled_idx=np.array([0]), unlabeled_idx=np.array([1, 2, 3]),
                val_cases=[Case("v", np.zeros((1, 1, 8, 8), np.float32), np.zeros((1, 8, 8), np.uint8), None)],
                test_cases=[], split={})
    return SegData(**{**base, **kw})


def test_a_consistent_reader_output_is_accepted():
    d = segdata()
    assert (d.spatial_dims, d.downsample, len(d.unlabeled_idx)) == (2, 1, 3)


@pytest.mark.parametrize("bad, message", [
    (dict(train_labels=np.zeros((3, 8, 8), np.uint8)), "mine: 4 training images but 3 labels"),
    (dict(unlabeled_idx=np.array([0, 1])), "mine: labeled and unlabeled training slices overlap"),
    (dict(labeled_idx=np.array([], np.int64)), "mine: no labeled training slices"),
    (dict(class_names=["background"]), "mine: 1 class names for 2 classes"),
])
def test_a_broken_reader_output_is_refused_naming_the_dataset(bad, message):
    with pytest.raises(ValueError, match=message):
        segdata(**bad)
