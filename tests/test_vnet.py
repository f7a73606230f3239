"""crossmatch_lite/models/vnet.py: the official LA VNet's size, its head dropout, and the
weights its checkpoints are rebuilt from."""
import torch

from crossmatch_lite.models.vnet import VNet


def test_vnet_has_the_official_parameter_count():
    # 9,448,866: the official VNet(n_channels=1, n_classes=2, normalization="batchnorm"),
    # counted by running AiEson/CrossMatch LA/code/networks/vnet.py at 59772e0.
    assert sum(p.numel() for p in VNet().parameters()) == 9_448_866


def test_vnet_head_dropout_only_in_a_plain_forward():
    torch.manual_seed(0)
    net = VNet(channels=(2, 4, 8, 16, 32), encoder_dropout=(0, 0, 0, 0, 0.0), head_dropout=0.9).train()
    x = torch.randn(2, 1, 16, 16, 16)
    feats = net.encode(x)
    torch.manual_seed(1)
    a = net.decode(feats)
    torch.manual_seed(2)
    b = net.decode(feats)
    assert torch.equal(a, b)  # decode: no dropout left, so no randomness
    torch.manual_seed(1)
    c = net(x)
    torch.manual_seed(2)
    d = net(x)
    assert not torch.allclose(c, d)  # forward: Dropout3d(0.9) before the output convolution


def test_io_weights_give_input_channels_and_classes():
    first, last = VNet.IO_WEIGHTS
    state = VNet(2, 3, channels=(2, 4, 8, 16, 32)).state_dict()
    assert (state[first].shape[1], state[last].shape[0]) == (2, 3)
