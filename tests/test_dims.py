"""crossmatch_lite/dims.py: the one answer to "2D or 3D?" and what follows from it."""
import pytest
import torch
import torch.nn.functional as F

from crossmatch_lite.config import ConfigError, DATASETS_3D, load_config
from crossmatch_lite.dims import DATASET_DIMS, Dims


def test_each_dataset_has_its_axes_and_network():
    assert sorted(DATASETS_3D) == ["la", "pancreas", "toy_la"]
    assert (Dims.of_dataset("acdc").arch, Dims.of_dataset("la").arch) == ("unet", "vnet")
    assert Dims.of_dataset("isic2018") == Dims(2) and Dims.of_dataset("pancreas").volumetric
    assert {Dims.of_dataset(n).name for n in DATASET_DIMS} == {"2D", "3D"}


def test_pixels_of_one_input_are_an_image_or_a_patch():
    assert Dims(2).pixels(128, [96, 96, 80]) == 128 * 128
    assert Dims(3).pixels(128, [96, 96, 80]) == 96 * 96 * 80


def test_a_tensor_says_its_own_axes():
    assert Dims.of_tensor(torch.zeros(2, 3, 8, 8)) == Dims(2)
    assert Dims.of_tensor(torch.zeros(2, 3, 4, 4, 4)).volumetric


@pytest.mark.parametrize("shape, reference", [((2, 6, 4, 4), F.dropout2d), ((2, 6, 4, 4, 4), F.dropout3d)])
def test_channel_dropout_is_torchs_and_draws_as_it_does(shape, reference):
    # The official replays depend on the same random draws as torch's Dropout2d / Dropout3d.
    f = torch.ones(shape)
    torch.manual_seed(3)
    ours = Dims.of_tensor(f).channel_dropout(f, 0.5)
    torch.manual_seed(3)
    assert torch.equal(ours, reference(f, 0.5, training=True))
    per_channel = ours.flatten(2)
    assert set(per_channel.amax(2).unique().tolist()) <= {0.0, 2.0}  # whole channels kept (x2) or dropped
    assert torch.equal(per_channel.amax(2), per_channel.amin(2))


def test_the_config_pairs_each_dataset_with_its_network():
    with pytest.raises(ConfigError, match="data.name=toy_la is 3D data, but model.arch=unet; use model.arch=vnet"):
        load_config("configs/crossmatch.yaml", ["data.name=toy_la"])
