"""crossmatch_lite/data/volumes.py: shrinking a 3D case averages the image and keeps each
voxel block's majority class."""
import numpy as np

from crossmatch_lite.data.base import Case
from crossmatch_lite.data.volumes import shrink, training_arrays


def test_shrink_averages_images_and_takes_the_majority_label():
    image = np.arange(4 * 4 * 2, dtype=np.float32).reshape(1, 4, 4, 2)
    label = np.zeros((4, 4, 2), np.uint8)
    label[:2, :2, :] = 1
    label[0, 0, 0] = 0  # one dissenting voxel of the 2x2x2 block does not flip its majority
    img, lab = shrink(image, label, 2)
    assert img.shape == (1, 2, 2, 1) and lab.shape == (2, 2, 1)
    assert img[0, 0, 0, 0] == image[0, :2, :2, :].mean()
    assert lab[:, :, 0].tolist() == [[1, 0], [0, 0]] and lab.dtype == np.uint8


def test_factor_one_leaves_the_arrays_and_training_arrays_shrink_every_case():
    image, label = np.ones((1, 6, 6, 4), np.float32), np.ones((6, 6, 4), np.uint8)
    same = shrink(image, label, 1)
    assert same[0] is image and same[1] is label
    imgs, labs = training_arrays([Case("a", image, label, None), Case("b", image[:, :4], label[:4], None)], 2)
    assert [i.shape for i in imgs] == [(1, 3, 3, 2), (1, 2, 3, 2)] and [lb.shape for lb in labs] == [(3, 3, 2), (2, 3, 2)]
