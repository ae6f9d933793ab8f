"""Write the K Euler steps out as one static module whose time-dependent terms are constants.

Per step k, each ResnetBlock's `mlp(time_mlp(temb(t_k)))` becomes the bias of its first conv; the
conv weights stay shared Parameters across steps, so the ONNX keeps one initializer per weight.
1/K moves into `final_proj`, RDB's `x5 * 0.2` into conv5. No loops, no random ops remain.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from elir_edge.model.arch import Elir, time_embedding
from elir_edge.model.arch.lunet import LUNet, ResnetBlock


def _scaled_conv(conv: nn.Conv2d, scale: float) -> nn.Conv2d:
    out = copy.deepcopy(conv)
    with torch.no_grad():
        out.weight.mul_(scale)
        out.bias.mul_(scale)
    return out


def _alias(mod: nn.Module) -> nn.Module:
    """A new module object of the same kind that holds `mod`'s own Parameters (shared, not copied).

    Each step gets its own modules so that tools naming nodes by module path (MCT, the ONNX exporter)
    see `steps.k.*` for step k, while the weights stay one tensor for all steps."""
    new = copy.copy(mod)
    new._parameters = dict(mod._parameters)
    new._buffers = dict(mod._buffers)
    new._modules = {k: _alias(v) for k, v in mod._modules.items()}
    return new


def _conv_sharing_weight(conv: nn.Conv2d, bias: torch.Tensor) -> nn.Conv2d:
    """A conv that uses `conv`'s weight Parameter itself, with a bias of its own."""
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    out.weight = conv.weight
    out.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return out


class StepResnetBlock(nn.Module):
    """ResnetBlock at one fixed t: the time term is folded into block1's conv bias."""

    def __init__(self, block: ResnetBlock, emb: torch.Tensor):
        super().__init__()
        conv1 = block.block1.block[2]
        self.norm1, self.norm2 = _alias(block.block1.block[0]), _alias(block.block2.block[0])
        self.conv1 = _conv_sharing_weight(conv1, conv1.bias + block.mlp(emb)[0])
        self.conv2 = _alias(block.block2.block[2])
        self.skip = _alias(block.conv2d)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class StepUNet(nn.Module):
    """The U-Net at t_k, already multiplied by 1/K: its output is the Euler update."""

    def __init__(self, fmir: LUNet, emb: torch.Tensor, final_proj: nn.Conv2d):
        super().__init__()
        self.first_proj = _alias(fmir.first_proj)
        self.downs = nn.ModuleList(_alias(d[1]) for d in fmir.down_blocks)
        self.down_res = nn.ModuleList(StepResnetBlock(d[0], emb) for d in fmir.down_blocks)
        self.mid_res = nn.ModuleList(StepResnetBlock(m, emb) for m in fmir.mid_blocks)
        self.ups = nn.ModuleList(_alias(u[0]) for u in fmir.up_blocks)
        self.up_res = nn.ModuleList(StepResnetBlock(u[1], emb) for u in fmir.up_blocks)
        self.final_norm = _alias(fmir.final_block.block[0])
        self.final_conv = _alias(fmir.final_block.block[2])
        self.final_proj = _alias(final_proj)

    def forward(self, z):
        x = self.first_proj(z)
        skips = []
        for res, down in zip(self.down_res, self.downs):
            x = res(x)
            skips.append(x)
            x = down(x)
        for res in self.mid_res:
            x = res(x)
        for up, res in zip(self.ups, self.up_res):
            x = res(torch.cat([up(x), skips.pop()], 1))
        return self.final_proj(self.final_conv(F.silu(self.final_norm(x))))


class UnrolledElir(nn.Module):
    """lq [N,3,H,W] in [0,1] (+ eps [N,C,H/8,W/8] ~ N(0,I) unless baked) -> hq clipped to [0,1]."""

    def __init__(self, model: Elir, noise: torch.Tensor | None = None):
        super().__init__()
        if model.arch.overparam:
            raise ValueError("unroll a collapsed model: fold the over-parameterized blocks first")
        self.k_steps, self.sigma_s = model.k_steps, model.sigma_s
        self.enc, self.dec = model.enc, model.dec
        self.mmse = copy.deepcopy(model.mmse)
        for rdb in (m for m in self.mmse.modules() if hasattr(m, "out_scale")):
            rdb.conv5.block[0] = _scaled_conv(rdb.conv5.block[0], rdb.out_scale)
            rdb.out_scale = 1.0
        fmir = model.fmir
        final_proj = _scaled_conv(fmir.final_proj, 1 / model.k_steps)
        with torch.no_grad():
            embs = [fmir.time_mlp(time_embedding(t, model.arch.t_emb_dim)) for t in model.step_times()]
            self.steps = nn.ModuleList(StepUNet(fmir, e, final_proj) for e in embs)
        if noise is not None:
            self.register_buffer("noise", (self.sigma_s * noise).detach().clone())
        else:
            self.noise = None

    def latents(self, lq, eps=None):
        """The latent after the coarse estimate and after each step (for per-step error reports)."""
        z = self.mmse(self.enc(lq)) + (self.noise if self.noise is not None else self.sigma_s * eps)
        out = [z]
        for step in self.steps:
            z = z + step(z)
            out.append(z)
        return out

    def forward(self, lq, eps):
        return torch.clamp(self.dec(self.latents(lq, eps)[-1]), 0, 1)


class BakedNoiseElir(UnrolledElir):
    """The single-input graph of `--noise baked`: eps is the constant `noise`. Its forward takes `lq`
    only, so tracers (the ONNX exporter, MCT) see no dangling `eps` input."""

    def __init__(self, model: Elir, noise: torch.Tensor):
        super().__init__(model, noise)

    def forward(self, lq):
        return super().forward(lq, None)
