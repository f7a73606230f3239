"""crossmatch_lite/models/__init__.py: build_model follows the config, and both networks split
into the encode/decode the step relies on (each network's own tests: test_unet.py, test_vnet.py)."""
import pytest
import torch

from crossmatch_lite.config import load_config
from crossmatch_lite.models import NETWORKS, build_model


@pytest.mark.parametrize("arch, shape", [("unet", (2, 1, 32, 32)), ("vnet", (2, 1, 16, 16, 16))])
def test_decode_of_encode_is_the_forward_pass(arch, shape):
    """The step decodes encoder features several ways; with dropout off, encode then decode
    is exactly the plain forward pass (2D and 3D)."""
    preset = "configs/la.yaml" if arch == "vnet" else "configs/crossmatch.yaml"
    cfg = load_config(preset, ["model.channels=[2,4,8,16,32]", "model.head_dropout=0"])
    torch.manual_seed(0)
    net = build_model(cfg.model, 1, 3).eval()
    x = torch.randn(shape)
    assert type(net) is NETWORKS[arch]
    torch.testing.assert_close(net.decode(net.encode(x)), net(x), rtol=0, atol=0)
