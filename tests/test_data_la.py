"""crossmatch_lite/data/la.py on a tiny folder written here in the UA-MT layout
(<ID>/mri_norm2.h5, train.list, test.list, train_{4,8,16}_label.list)."""
import h5py
import numpy as np
import pytest

from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data
from crossmatch_lite.data.la import SPACING, la_split

N_TRAIN, N_TEST = 20, 2


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("LA")
    rng = np.random.default_rng(0)
    ids = [f"CASE{i:02d}" for i in rng.permutation(N_TRAIN + N_TEST)]
    for cid in ids:
        (root / cid).mkdir()
        label = np.zeros((8, 8, 4), np.uint8)
        label[2:6, 2:6, 1:3] = 1
        with h5py.File(root / cid / "mri_norm2.h5", "w") as f:
            f.create_dataset("image", data=rng.normal(0, 1, label.shape).astype(np.float32) + label)
            f.create_dataset("label", data=label)
    train = ids[:N_TRAIN]
    (root / "train.list").write_text("\n".join(train) + "\n")
    (root / "test.list").write_text("\n".join(ids[N_TRAIN:]) + "\n")
    for n in (4, 8, 16):
        (root / f"train_{n}_label.list").write_text("\n".join(train[:n]) + "\n")
    return root


def test_official_labeled_lists_are_used_and_val_never_takes_their_scans(root):
    train = (root / "train.list").read_text().split()
    split = la_split(root, 8, 2, seed=0)
    assert split["labeled"] == sorted(train[:8]) and split["labeled_source"] == "train_8_label.list"
    assert len(split["val"]) == 2 and not set(split["val"]) & set(train[:16])
    assert len(split["unlabeled"]) == N_TRAIN - 8 - 2 and len(split["test"]) == N_TEST
    assert la_split(root, 4, 2, seed=3)["val"] == split["val"]  # val does not follow the run seed


def test_other_counts_are_drawn_by_the_seed(root):
    a, b = la_split(root, 5, 2, seed=0), la_split(root, 5, 2, seed=1)
    assert len(a["labeled"]) == 5 and a["labeled_source"] == "seed 0" and a["labeled"] != b["labeled"]


def test_cases_are_volumes_at_the_challenge_resolution(root):
    cfg = load_config("configs/la.yaml", [f"data.root={root}", "data.val_count=2", "data.labeled=4"]).data
    data = load_data(cfg, 0)
    case = data.test_cases[0]
    assert case.image.shape == (1, 8, 8, 4) and case.label.dtype == np.uint8 and case.spacing == SPACING
    assert data.spatial_dims == 3 and data.class_names == ["background", "left atrium"]
    assert len(data.labeled_idx) == 4 and len(data.train_images) == N_TRAIN - 2
