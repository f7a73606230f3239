"""crossmatch_lite/models/unet.py: the official ACDC UNet's size, its two up-steps, and the
weights its checkpoints are rebuilt from."""
import torch

from crossmatch_lite.models.unet import UNet


def test_unet_has_the_official_parameter_count():
    # 1,813,764: the official ACDC UNet (bilinear up-step), 1 input channel, 4 classes.
    assert sum(p.numel() for p in UNet(1, 4).parameters()) == 1_813_764


def test_the_transposed_up_step_is_the_variant_the_flag_names():
    net = UNet(1, 4, (2, 4, 8, 16, 32), upsample="transpose")
    assert isinstance(net.ups[0].up, torch.nn.ConvTranspose2d)
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 4, 32, 32)


def test_io_weights_give_input_channels_and_classes():
    first, last = UNet.IO_WEIGHTS
    state = UNet(3, 5, (2, 4, 8, 16, 32)).state_dict()
    assert (state[first].shape[1], state[last].shape[0]) == (3, 5)


def test_the_encoder_gives_five_levels_halving_the_size():
    feats = UNet(1, 2, (2, 4, 8, 16, 32)).eval().encode(torch.zeros(1, 1, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(2, 32, 32), (4, 16, 16), (8, 8, 8), (16, 4, 4), (32, 2, 2)]
