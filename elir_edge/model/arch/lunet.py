"""The latent U-Net vector field `fmir` (the reference's LUnet): `fmir.*` keys."""

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = 32  # GroupNorm groups of the reference code; not recoverable from tensor shapes


class TimeMLP(nn.Module):
    def __init__(self, t_emb_dim: int, out_dim: int):
        super().__init__()
        self.linear1 = nn.Linear(t_emb_dim, out_dim)
        self.act = nn.SiLU()
        self.linear2 = nn.Linear(out_dim, out_dim)

    def forward(self, t_emb):
        return self.linear2(self.act(self.linear1(t_emb)))


class NormActConv(nn.Module):
    """The reference's Block2D: `block` = Sequential(GroupNorm, SiLU, 3x3 conv[, 1x1 conv])."""

    def __init__(self, c_in: int, c_out: int, overparam: bool):
        super().__init__()
        convs = ([nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.Conv2d(4 * c_out, c_out, 1)] if overparam
                 else [nn.Conv2d(c_in, c_out, 3, padding=1)])
        self.block = nn.Sequential(nn.GroupNorm(GROUPS, c_in), nn.SiLU(), *convs)

    def forward(self, x):
        return self.block(x)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, overparam: bool):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.block1 = NormActConv(c_in, c_out, overparam)
        self.block2 = NormActConv(c_out, c_out, overparam)
        self.conv2d = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, emb):
        h = self.block1(x) + self.mlp(emb)[:, :, None, None]
        return self.block2(h) + self.conv2d(x)


class Downsample(nn.Module):
    def __init__(self, c_in: int, c_out: int, rescale_conv: bool):
        super().__init__()
        self.rescale_conv = rescale_conv
        if rescale_conv:
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        return self.conv(x) if self.rescale_conv else F.avg_pool2d(self.conv(x), 2)


class Upsample(nn.Module):
    def __init__(self, c_in: int, c_out: int, rescale_conv: bool):
        super().__init__()
        self.rescale_conv = rescale_conv
        if rescale_conv:
            self.convtr = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        if self.rescale_conv:
            return self.convtr(x)
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class LUNet(nn.Module):
    def __init__(self, ch_mult=(1, 2, 1, 2), n_mid_blocks=3, in_channels=16, hid_channels=128,
                 out_channels=16, t_emb_dim=160, use_rescale_conv=True, overparam=False):
        super().__init__()
        emb_dim = 4 * t_emb_dim
        self.time_mlp = TimeMLP(t_emb_dim, emb_dim)
        self.first_proj = nn.Conv2d(in_channels, hid_channels, 1)
        self.down_blocks = nn.ModuleList()
        self.mid_blocks = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        chs = hid_channels
        for mult in ch_mult:
            resnet = ResnetBlock(chs, chs, emb_dim, overparam)
            down = nn.Identity() if mult == 1 else Downsample(chs, mult * chs, use_rescale_conv)
            chs = chs * mult
            self.down_blocks.append(nn.ModuleList([resnet, down]))
        for _ in range(n_mid_blocks):
            self.mid_blocks.append(ResnetBlock(chs, chs, emb_dim, overparam))
        for mult in reversed(ch_mult):
            up = nn.Identity() if mult == 1 else Upsample(chs, chs // mult, use_rescale_conv)
            chs = chs // mult
            self.up_blocks.append(nn.ModuleList([up, ResnetBlock(2 * chs, chs, emb_dim, overparam)]))
        self.final_block = NormActConv(chs, chs, overparam)
        self.final_proj = nn.Conv2d(chs, out_channels, 1)

    def resnet_blocks(self):
        """Every ResnetBlock in execution order (what the unroller rewrites per step)."""
        return ([d[0] for d in self.down_blocks] + list(self.mid_blocks) + [u[1] for u in self.up_blocks])

    def forward(self, x, t_emb):
        emb = self.time_mlp(t_emb)
        x = self.first_proj(x)
        skips = []
        for resnet, down in self.down_blocks:
            x = resnet(x, emb)
            skips.append(x)
            x = down(x)
        for resnet in self.mid_blocks:
            x = resnet(x, emb)
        for up, resnet in self.up_blocks:
            x = resnet(torch.cat([up(x), skips.pop()], 1), emb)
        return self.final_proj(self.final_block(x))
