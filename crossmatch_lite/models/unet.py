"""The SSL4MIS 2D UNet that UniMatch and CrossMatch train on ACDC.

Split into `encode` and `decode` because CrossMatch's feature perturbation decodes the
same encoder features several ways (clean, weak dropout, strong dropout) with one
decoder. Architecture follows the network the official CrossMatch ACDC code actually builds:
channels 16-32-64-128-256, BatchNorm + LeakyReLU, dropout 0.05/0.1/0.2/0.3/0.5 inside
the encoder blocks, and each up-step a 1x1 convolution to the skip's width followed by
bilinear upsampling (align_corners=True). The official model sets `bilinear=False`, but
its decoder never passes that flag on and the up-block defaults to bilinear, so the
bilinear up-step is what runs (1,813,764 parameters for 1 channel and 4 classes).
`upsample="transpose"` gives the transposed-convolution variant that the flag names.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, dropout: float):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(),
        )


UPSAMPLE_MODES = ("bilinear", "transpose")


class UpBlock(nn.Module):
    def __init__(self, cin_deep: int, cin_skip: int, cout: int, upsample: str = "bilinear"):
        super().__init__()
        if upsample == "bilinear":
            self.up = nn.Sequential(nn.Conv2d(cin_deep, cin_skip, kernel_size=1),
                                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))
        elif upsample == "transpose":
            self.up = nn.ConvTranspose2d(cin_deep, cin_skip, kernel_size=2, stride=2)
        else:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.conv = ConvBlock(2 * cin_skip, cout, 0.0)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(deep)], dim=1))


class UNet(nn.Module):
    # Weights whose shapes give the input channels ([c0, in, 3, 3]) and classes ([K, c0, 3, 3]).
    IO_WEIGHTS = ("inc.0.weight", "head.weight")

    def __init__(self, in_channels: int, num_classes: int,
                 channels=(16, 32, 64, 128, 256), encoder_dropout=(0.05, 0.1, 0.2, 0.3, 0.5),
                 upsample: str = "bilinear"):
        super().__init__()
        c, p = list(channels), list(encoder_dropout)
        self.inc = ConvBlock(in_channels, c[0], p[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(c[i], c[i + 1], p[i + 1])) for i in range(4)
        )
        self.ups = nn.ModuleList(UpBlock(c[i + 1], c[i], c[i], upsample) for i in reversed(range(4)))
        self.head = nn.Conv2d(c[0], num_classes, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = up(x, skip)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
