"""The networks: the official parameter counts, the encode/decode split the step relies on,
dropout where the official forward passes put it, and build_model following the config."""
import pytest
import torch

from crossmatch_lite.config import load_config
from crossmatch_lite.models import build_model
from crossmatch_lite.models.unet import UNet
from crossmatch_lite.models.vnet import VNet


def test_unet_has_the_official_parameter_count():
    # 1,813,764: the official ACDC UNet (bilinear up-step), 1 input channel, 4 classes.
    assert sum(p.numel() for p in UNet(1, 4).parameters()) == 1_813_764


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



@pytest.mark.parametrize("arch, shape", [("unet", (2, 1, 32, 32)), ("vnet", (2, 1, 16, 16, 16))])
def test_decode_of_encode_is_the_forward_pass(arch, shape):
    """The step decodes encoder features several ways; with dropout off, encode then decode
    is exactly the plain forward pass (2D and 3D)."""
    preset = "configs/la.yaml" if arch == "vnet" else "configs/crossmatch.yaml"
    cfg = load_config(preset, ["model.channels=[2,4,8,16,32]", "model.head_dropout=0"])
    torch.manual_seed(0)
    net = build_model(cfg.model, 1, 3).eval()
    x = torch.randn(shape)
    assert type(net).__name__ == arch.upper().replace("UNET", "UNet").replace("VNET", "VNet")
    torch.testing.assert_close(net.decode(net.encode(x)), net(x), rtol=0, atol=0)
