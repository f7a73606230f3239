"""crossmatch_lite/models/official_weights.py: the official ACDC UNet's parameter names map
one to one onto ours, values untouched."""
import re

import pytest
import torch

from crossmatch_lite.models.official_weights import from_official, official_to_ours
from crossmatch_lite.models.unet import UNet

# The official nesting, restated from our names (the inverse of the module's rules).
INVERSE = ((r"^inc\.(\d+)\.", lambda m: f"encoder.in_conv.conv_conv.{m[1]}."),
           (r"^downs\.(\d)\.1\.(\d+)\.", lambda m: f"encoder.down{int(m[1]) + 1}.maxpool_conv.1.conv_conv.{m[2]}."),
           (r"^ups\.(\d)\.up\.0\.", lambda m: f"decoder.up{int(m[1]) + 1}.conv1x1."),
           (r"^ups\.(\d)\.conv\.(\d+)\.", lambda m: f"decoder.up{int(m[1]) + 1}.conv.conv_conv.{m[2]}."),
           (r"^head\.", lambda m: "decoder.out_conv."))


def official_name(ours: str) -> str:
    for pattern, repl in INVERSE:
        if re.match(pattern, ours):
            return re.sub(pattern, repl, ours)
    raise AssertionError(ours)


def test_known_names():
    assert official_to_ours("encoder.down1.maxpool_conv.1.conv_conv.0.weight") == "downs.0.1.0.weight"
    assert official_to_ours("module.decoder.up4.conv1x1.bias") == "ups.3.up.0.bias"  # DDP's prefix dropped
    assert official_to_ours("decoder.out_conv.weight") == "head.weight"


def test_a_whole_official_state_dict_loads_into_ours_with_its_values():
    torch.manual_seed(0)
    ours = UNet(1, 4).state_dict()
    official = {official_name(k): torch.randn_like(v.float()) for k, v in ours.items()}
    mapped = from_official(official)
    assert sorted(mapped) == sorted(ours)  # every parameter and buffer, none twice
    net = UNet(1, 4)
    net.load_state_dict({k: v.to(ours[k].dtype) for k, v in mapped.items()})
    w = official["encoder.down2.maxpool_conv.1.conv_conv.4.weight"]
    assert torch.equal(net.state_dict()["downs.1.1.4.weight"], w)


def test_a_name_the_official_unet_does_not_have_is_refused():
    with pytest.raises(KeyError, match="not a parameter of the official CrossMatch ACDC UNet"):
        official_to_ours("encoder.aux_head.weight")
