"""The coarse estimator (RRDBNet in latent space): `mmse.lrm.*` keys."""

import torch
from torch import nn


class ConvAct(nn.Module):
    """`block` = Sequential(3x3 conv[, 1x1 conv], act); the 1x1 only when over-parameterized."""

    def __init__(self, c_in: int, c_out: int, act: bool, overparam: bool):
        super().__init__()
        convs = ([nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.Conv2d(4 * c_out, c_out, 1)] if overparam
                 else [nn.Conv2d(c_in, c_out, 3, padding=1)])
        self.block = nn.Sequential(*convs, nn.SiLU() if act else nn.Identity())

    def forward(self, x):
        return self.block(x)


class RDB(nn.Module):
    """Residual dense block; `out_scale` is 0.2, or 1.0 once folded into conv5's weights."""

    def __init__(self, c_io: int, c_hid: int, overparam: bool):
        super().__init__()
        self.conv1 = ConvAct(c_io, c_hid, True, overparam)
        self.conv2 = ConvAct(c_io + c_hid, c_hid, True, overparam)
        self.conv3 = ConvAct(c_io + 2 * c_hid, c_hid, True, overparam)
        self.conv4 = ConvAct(c_io + 3 * c_hid, c_hid, True, overparam)
        self.conv5 = ConvAct(c_io + 4 * c_hid, c_io, False, overparam)
        self.out_scale = 0.2

    def forward(self, x):
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(conv(torch.cat(feats, 1)))
        x5 = self.conv5(torch.cat(feats, 1))
        return (x5 if self.out_scale == 1.0 else x5 * self.out_scale) + x


class RRDB(nn.Module):
    def __init__(self, c_io: int, c_hid: int, overparam: bool):
        super().__init__()
        self.RDB1 = RDB(c_io, c_hid, overparam)
        self.RDB2 = RDB(c_io, c_hid, overparam)
        self.RDB3 = RDB(c_io, c_hid, overparam)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, c_io: int = 16, c_hid: int = 96, n_rrdb: int = 3, overparam: bool = False):
        super().__init__()
        self.lrm = nn.Sequential(*[RRDB(c_io, c_hid, overparam) for _ in range(n_rrdb)])

    def forward(self, x):
        return x + self.lrm(x)
