"""The tiny auto-encoder (TAESD layout): `enc.layers.*` and `dec.layers.*` keys.

The width is a parameter (64 in TAESD3) so small trained models fit the same graph.
"""

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class AEBlock(nn.Module):
    """Three 3x3 convs with ReLU between, identity skip, ReLU after the sum."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Sequential(conv3x3(ch, ch), nn.ReLU(), conv3x3(ch, ch), nn.ReLU(), conv3x3(ch, ch))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


class Encoder(nn.Module):
    def __init__(self, latent_channels: int = 16, width: int = 64):
        super().__init__()
        w = width

        def down():
            return conv3x3(w, w, stride=2, bias=False)

        self.layers = nn.Sequential(
            conv3x3(3, w), AEBlock(w),
            down(), AEBlock(w), AEBlock(w), AEBlock(w),
            down(), AEBlock(w), AEBlock(w), AEBlock(w),
            down(), AEBlock(w), AEBlock(w), AEBlock(w),
            conv3x3(w, latent_channels))

    def forward(self, x):
        return self.layers(x)


class Decoder(nn.Module):
    def __init__(self, latent_channels: int = 16, width: int = 64):
        super().__init__()
        w = width

        def up():
            return [nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(w, w, bias=False)]

        self.layers = nn.Sequential(
            conv3x3(latent_channels, w), nn.ReLU(),
            AEBlock(w), AEBlock(w), AEBlock(w), *up(),
            AEBlock(w), AEBlock(w), AEBlock(w), *up(),
            AEBlock(w), AEBlock(w), AEBlock(w), *up(),
            AEBlock(w), conv3x3(w, 3))

    def forward(self, x):
        return self.layers(torch.tanh(x / 3) * 3)
