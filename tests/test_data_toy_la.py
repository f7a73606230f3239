"""crossmatch_lite/data/toy_la.py: synthetic 3D volumes of differing sizes, a labelled
ellipsoid and an unlabelled decoy as bright, and a labeled set chosen by the run seed."""
import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter

from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data
from crossmatch_lite.data.toy_la import COUNTS, volume


def test_one_volume_holds_a_labelled_structure_and_an_equally_bright_decoy():
    image, label = volume(0)
    assert image.dtype == np.float32 and image.shape[0] == 1 and image.shape[1:] == label.shape
    assert set(np.unique(label)) == {0, 1} and 0.01 < label.mean() < 0.2
    assert abs(image.mean()) < 1e-4 and abs(image.std() - 1) < 1e-3  # z-scored, as LA's volumes
    # A bright unlabelled ball away from the structure: intensity alone does not segment it.
    smooth = gaussian_filter(image[0], 2)
    away = ~binary_dilation(label.astype(bool), iterations=3)
    assert smooth[away].max() > 0.3 * smooth[label == 1].max()  # without the decoy: under 0.2
    assert {volume(i)[1].shape for i in range(4)} != {label.shape}  # sizes differ, as scans do


def test_split_sizes_seeded_labeled_set_and_shrunk_training_volumes():
    cfg = load_config("configs/toy_la.yaml", ["data.labeled=4", "data.downsample=2"]).data
    a, b = load_data(cfg, seed=0), load_data(cfg, seed=1)
    assert len(a.labeled_idx) == 4 and len(a.unlabeled_idx) == COUNTS["train"] - 4
    assert (len(a.val_cases), len(a.test_cases), a.spatial_dims) == (COUNTS["val"], COUNTS["test"], 3)
    assert a.split["labeled"] != b.split["labeled"] and a.split["test"] == b.split["test"]
    first = sorted(a.split["labeled"] + a.split["unlabeled"])[0]  # training arrays are in id order
    shrunk, native = a.train_labels[0].shape, volume(int(first[1:]))[1].shape
    assert all(abs(2 * s - n) <= 1 for s, n in zip(shrunk, native))  # halved for training...
    assert a.val_cases[0].label.shape == volume(int(a.val_cases[0].id[1:]))[1].shape  # ...cases stay native
