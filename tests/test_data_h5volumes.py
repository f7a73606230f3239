"""crossmatch_lite/data/h5volumes.py: the shared 3D reader refuses a damaged or foreign file
in one line that says how to recreate the folder."""
import h5py
import numpy as np
import pytest

from crossmatch_lite.data import DataError
from crossmatch_lite.data import h5volumes as H5

LAYOUT = H5.H5Volumes("mine", "{cid}.h5", (1.0, 1.0, 2.0), ("background", "organ"), fix="re-create {root}",
                      reserved=lambda root, train: train[:2], published=lambda root, rest, n: None)


def write(path, image, label):
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image)
        f.create_dataset("label", data=label)


def test_a_good_case_and_float_labels_of_0_and_1(tmp_path):
    label = np.zeros((4, 4, 2), np.float32)
    label[1:3, 1:3] = 1.0  # as MC-Net's pancreas files store it
    write(tmp_path / "a.h5", np.ones((4, 4, 2), np.float64), label)
    case = H5.read_case(LAYOUT, tmp_path, "a")
    assert case.image.shape == (1, 4, 4, 2) and case.image.dtype == np.float32
    assert case.label.dtype == np.uint8 and case.label.sum() == 8 and case.spacing == (1.0, 1.0, 2.0)


@pytest.mark.parametrize("image, label, message", [
    (np.ones((4, 4, 2)), np.full((4, 4, 2), 255, np.uint8), r"label values 0 and 1, got .* values \[255\]"),
    (np.ones((4, 4, 2)), np.zeros((4, 4, 3), np.uint8), r"image \(4, 4, 2\), label \(4, 4, 3\)"),
    (np.full((4, 4, 2), np.nan), np.zeros((4, 4, 2), np.uint8), "damaged"),
])
def test_a_bad_case_is_refused_in_one_line_with_the_fix(tmp_path, image, label, message):
    write(tmp_path / "b.h5", image, label)
    with pytest.raises(DataError, match=message) as e:
        H5.read_case(LAYOUT, tmp_path, "b")
    assert "re-create" in str(e.value) and "\n" not in str(e.value)


def test_missing_lists_and_too_many_val_scans_are_refused(tmp_path):
    with pytest.raises(DataError, match="train.list is missing: .* is not a prepared mine folder; re-create"):
        H5.make_split(LAYOUT, tmp_path, 2, 1, seed=0)
    (tmp_path / "train.list").write_text("a\nb\nc\nd\n")
    (tmp_path / "test.list").write_text("e\n")
    with pytest.raises(DataError, match="data.val_count=2, but only 2 mine training scans"):
        H5.make_split(LAYOUT, tmp_path, 1, 2, seed=0)
    split = H5.make_split(LAYOUT, tmp_path, 1, 1, seed=0)
    assert split["val"][0] in ("c", "d") and len(split["labeled"]) == 1 and split["test"] == ["e"]
