"""The network a config names: the 2D UNet (ACDC, ISIC) or the 3D VNet (LA)."""
from __future__ import annotations

from torch import nn

from .unet import UNet
from .vnet import VNet

# model.arch -> network class (the config pairs each dataset with its arch: crossmatch_lite/dims.py).
NETWORKS = {"unet": UNet, "vnet": VNet}


def build_model(model_cfg, in_channels: int, num_classes: int) -> nn.Module:
    """The network a config describes (`model_cfg` is the config's `model` section)."""
    m = model_cfg  # model.arch is one of its Literal choices: the config refuses others
    if m.arch == "unet":
        return UNet(in_channels, num_classes, m.channels, m.encoder_dropout, m.upsample)
    return VNet(in_channels, num_classes, m.channels, m.encoder_dropout, m.head_dropout)
