"""The 3D V-Net that UA-MT and the official CrossMatch LA code train on Left Atrium MRI.

Split into `encode` and `decode` like the 2D UNet, so the CrossMatch step decodes one set
of encoder features clean and through the dropout streams. Layer for layer it is the
official network with `normalization="batchnorm", has_dropout=True` (module names too, so
official weights load unchanged): five encoder stages of 1, 2, 3, 3, 3 convolutions
(3x3x3, BatchNorm, ReLU) joined by stride-2 2x2x2 convolutions; a decoder of transposed
convolutions whose outputs are *added* to the skip features (V-Net, not U-Net
concatenation); a 1x1x1 output convolution.

Dropout follows the official forward passes exactly:
  - `encode` applies Dropout3d(p) to the bottleneck features (in train mode);
  - `forward` (a plain prediction) also applies it before the output convolution;
  - `decode` alone does not: the official feature-perturbation pass (`need_fp=True`)
    decodes with `no_drop=True`, and the CrossMatch step decodes through that path.
"""
from __future__ import annotations

import torch
from torch import nn


def _stage(n_convs: int, cin: int, cout: int) -> nn.Module:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
    return _Wrapped(nn.Sequential(*layers))


def _down(cin: int, cout: int) -> nn.Module:
    return _Wrapped(nn.Sequential(nn.Conv3d(cin, cout, 2, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)))


def _up(cin: int, cout: int) -> nn.Module:
    return _Wrapped(nn.Sequential(nn.ConvTranspose3d(cin, cout, 2, stride=2), nn.BatchNorm3d(cout),
                                  nn.ReLU(inplace=True)))


class _Wrapped(nn.Module):
    """Holds its layers as `.conv`, the official attribute name (weights keep their keys)."""

    def __init__(self, conv: nn.Sequential):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class VNet(nn.Module):
    # Weights whose shapes give the input channels and the classes (see UNet.IO_WEIGHTS).
    IO_WEIGHTS = ("block_one.conv.0.weight", "out_conv.weight")

    def __init__(self, in_channels: int = 1, num_classes: int = 2,
                 channels=(16, 32, 64, 128, 256), encoder_dropout=(0.0, 0.0, 0.0, 0.0, 0.5),
                 head_dropout: float = 0.5):
        super().__init__()
        c = list(channels)
        if any(p for p in list(encoder_dropout)[:-1]):
            raise ValueError("the VNet drops out only its bottleneck: model.encoder_dropout must be "
                             f"[0, 0, 0, 0, p], got {list(encoder_dropout)}")
        self.block_one, self.block_one_dw = _stage(1, in_channels, c[0]), _down(c[0], c[1])
        self.block_two, self.block_two_dw = _stage(2, c[1], c[1]), _down(c[1], c[2])
        self.block_three, self.block_three_dw = _stage(3, c[2], c[2]), _down(c[2], c[3])
        self.block_four, self.block_four_dw = _stage(3, c[3], c[3]), _down(c[3], c[4])
        self.block_five, self.block_five_up = _stage(3, c[4], c[4]), _up(c[4], c[3])
        self.block_six, self.block_six_up = _stage(3, c[3], c[3]), _up(c[3], c[2])
        self.block_seven, self.block_seven_up = _stage(3, c[2], c[2]), _up(c[2], c[1])
        self.block_eight, self.block_eight_up = _stage(2, c[1], c[1]), _up(c[1], c[0])
        self.block_nine = _stage(1, c[0], c[0])
        self.out_conv = nn.Conv3d(c[0], num_classes, 1)
        self.bottleneck_dropout = nn.Dropout3d(float(list(encoder_dropout)[-1]))
        self.head_dropout = nn.Dropout3d(float(head_dropout))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.block_one(x)
        x2 = self.block_two(self.block_one_dw(x1))
        x3 = self.block_three(self.block_two_dw(x2))
        x4 = self.block_four(self.block_three_dw(x3))
        x5 = self.bottleneck_dropout(self.block_five(self.block_four_dw(x4)))
        return [x1, x2, x3, x4, x5]

    def decode(self, feats: list[torch.Tensor], head_dropout: bool = False) -> torch.Tensor:
        x1, x2, x3, x4, x5 = feats
        x = self.block_six(self.block_five_up(x5) + x4)
        x = self.block_seven(self.block_six_up(x) + x3)
        x = self.block_eight(self.block_seven_up(x) + x2)
        x = self.block_nine(self.block_eight_up(x) + x1)
        if head_dropout:
            x = self.head_dropout(x)
        return self.out_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), head_dropout=True)
