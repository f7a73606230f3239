"""crossmatch_lite/data/resize.py: ACDC slices resized as the official loader does, photographs
filtered, masks kept as class ids."""
import numpy as np
from scipy.ndimage import zoom

from crossmatch_lite.data.resize import resize_mask, resize_rgb, zoom_nearest


def test_zoom_nearest_is_the_official_scipy_zoom_of_order_0():
    rng = np.random.default_rng(0)
    slice_ = rng.random((20, 30)).astype(np.float32)
    np.testing.assert_array_equal(zoom_nearest(slice_, 16), zoom(slice_, (16 / 20, 16 / 30), order=0))
    same = zoom_nearest(slice_[:16, :16], 16)
    assert np.array_equal(same, slice_[:16, :16]) and same is not slice_  # a copy at the size already


def test_rgb_is_box_filtered_when_shrinking_and_masks_stay_class_ids():
    img = np.zeros((4, 4, 3), np.uint8)
    img[::2, ::2] = 200  # one bright pixel in each 2x2 block
    small = resize_rgb(img, 2)
    assert small.shape == (2, 2, 3) and np.all(small == 50)  # the block's mean, not one of its pixels
    mask = np.array([[0, 2], [1, 2]], np.uint8)
    big = resize_mask(mask, 4)
    assert set(np.unique(big)) == {0, 1, 2} and big[3, 0] == 1 and big.dtype == np.uint8
