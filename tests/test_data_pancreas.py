"""Pancreas-CT reader on tiny volumes written here in MC-Net's published layout
(Pancreas_h5/<case>_norm.h5 with float32 image and float32 0/1 label, train.list,
test.list), and the pancreas presets trained 2 iterations at toy size."""
import json

import h5py
import numpy as np
import pytest

from crossmatch_lite.config import load_config
from crossmatch_lite.data import DataError, load_data
from crossmatch_lite.train import train

N_TRAIN, N_TEST = 16, 2  # 62 and 20 in the release; 16 keeps the first 12 and leaves a val pool
TINY = ["data.val_count=2", "data.patch=[16,16,16]", "eval.stride=[8,8,8]", "model.channels=[2,4,8,16,32]",
        "train.iterations=2", "train.val_every=2", "train.threads=1", "train.progress=false", "train.amp=off",
        "eval.distances=false"]


def write_case(path, rng):
    shape = tuple(int(s) for s in rng.integers(20, 29, 3))
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    centre = np.array(shape)[:, None, None, None] / 2
    label = (((grid - centre) / 5.0) ** 2).sum(0) <= 1
    image = rng.normal(0, 1, shape) + 2 * label
    with h5py.File(path, "w") as f:  # as MC-Net's notebook writes them: z-scored, label float32, gzip
        f.create_dataset("image", data=((image - image.mean()) / image.std()).astype(np.float32), compression="gzip")
        f.create_dataset("label", data=label.astype(np.float32), compression="gzip")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("Pancreas")
    (root / "Pancreas_h5").mkdir()
    rng = np.random.default_rng(0)
    names = [f"image{i:04d}" for i in rng.permutation(np.arange(1, N_TRAIN + N_TEST + 1))]  # lists are unsorted
    for name in names:
        write_case(root / "Pancreas_h5" / f"{name}_norm.h5", rng)
    (root / "train.list").write_text("\n".join(names[:N_TRAIN]) + "\n")
    (root / "test.list").write_text("\n".join(names[N_TRAIN:]) + "\n")
    return root


def test_labeled_are_the_first_of_train_list_and_val_is_never_among_the_first_12(root):
    from crossmatch_lite.data.pancreas import pancreas_split

    train_list = (root / "train.list").read_text().split()
    split = pancreas_split(root, 6, 2, seed=0)
    assert split["labeled"] == sorted(train_list[:6])
    assert split["test"] == sorted((root / "test.list").read_text().split())
    assert not set(split["val"]) & set(train_list[:12]) and len(split["val"]) == 2
    assert len(split["unlabeled"]) == N_TRAIN - 6 - 2
    twenty = pancreas_split(root, 12, 2, seed=5)
    assert twenty["labeled"] == sorted(train_list[:12]) and twenty["val"] == split["val"]


def test_cases_are_binary_uint8_volumes_at_1_mm(root):
    cfg = load_config("configs/pancreas.yaml", [f"data.root={root}", "data.val_count=2"]).data
    data = load_data(cfg, 0)
    case = data.test_cases[0]
    assert data.spatial_dims == 3 and data.in_channels == 1 and data.class_names == ["background", "pancreas"]
    assert case.image.shape[0] == 1 and case.image.shape[1:] == case.label.shape
    assert case.label.dtype == np.uint8 and set(np.unique(case.label)) == {0, 1} and case.spacing == (1.0, 1.0, 1.0)


def test_a_label_that_is_not_0_and_1_is_refused_naming_the_file(tmp_path):
    from crossmatch_lite.data.pancreas import read_case

    (tmp_path / "Pancreas_h5").mkdir()
    with h5py.File(tmp_path / "Pancreas_h5" / "image0001_norm.h5", "w") as f:
        f["image"], f["label"] = np.zeros((8, 8, 8), np.float32), np.full((8, 8, 8), 255, np.float32)
    with pytest.raises(DataError, match=r"image0001_norm\.h5: .*label values 0 and 1.*\[255\.0\]"):
        read_case(tmp_path, "image0001")


@pytest.mark.parametrize("preset", ["pancreas.yaml", "pancreas_supervised.yaml"])
def test_the_pancreas_presets_train_on_the_published_layout(root, tmp_path, preset):
    cfg = load_config(f"configs/{preset}", [f"data.root={root}"] + TINY)
    summary = train(cfg, tmp_path / "run")
    assert 0 <= summary["test"]["dice"]["mean"] <= 1
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["dataset"] == "pancreas" and split["labeled_source"] == "the first 6 of train.list"


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(b""), r"image0001_norm\.h5 cannot be read as HDF5 \(it is empty \(0 bytes\)\)"),
    (lambda p: p.write_bytes(p.read_bytes()[:300]), r"image0001_norm\.h5 cannot be read as HDF5 .*truncated"),
    (lambda p: _write(p, None), r"image0001_norm\.h5 has no `image` array"),
    (lambda p: _write(p, np.zeros((8, 8), np.float32)), r"`image` is float32 of shape \(8, 8\), but a case is a 3D"),
    (lambda p: _write(p, np.zeros((8, 8, 8, 2), np.float32)), r"shape \(8, 8, 8, 2\), but a case is a 3D"),
])
def test_a_damaged_or_misshapen_case_file_is_named_before_training(tmp_path, damage, words):
    from crossmatch_lite.data.pancreas import read_case

    (tmp_path / "Pancreas_h5").mkdir()
    path = tmp_path / "Pancreas_h5" / "image0001_norm.h5"
    write_case(path, np.random.default_rng(0))
    damage(path)
    with pytest.raises(DataError, match=words) as e:
        read_case(tmp_path, "image0001")
    assert "\n" not in str(e.value)


def _write(path, image):
    with h5py.File(path, "w") as f:
        f["label"] = np.zeros((8, 8, 8) if image is None else image.shape, np.float32)
        if image is not None:
            f["image"] = image
