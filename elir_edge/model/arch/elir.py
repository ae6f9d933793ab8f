"""The whole ELIR model as the reference runs it: encoder, coarse estimate + noise, K Euler steps, decoder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from elir_edge.model.arch.autoencoder import Decoder, Encoder
from elir_edge.model.arch.lunet import LUNet
from elir_edge.model.arch.rrdbnet import RRDBNet


@dataclass(frozen=True)
class ArchConfig:
    """Everything about the network that the tensor shapes determine."""

    latent_channels: int = 16
    ae_width: int = 64
    unet_hid: int = 128
    ch_mult: tuple = (1, 2, 1, 2)
    n_mid_blocks: int = 3
    t_emb_dim: int = 160
    use_rescale_conv: bool = True
    rrdb_hid: int = 96
    n_rrdb: int = 3
    fmir_overparam: bool = False
    mmse_overparam: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArchConfig":
        return cls(**{**d, "ch_mult": tuple(d["ch_mult"])})

    @property
    def overparam(self) -> bool:
        return self.fmir_overparam or self.mmse_overparam

    def collapsed(self) -> "ArchConfig":
        return ArchConfig(**{**self.to_dict(), "ch_mult": self.ch_mult,
                             "fmir_overparam": False, "mmse_overparam": False})


def time_embedding(t, dim: int, device=None) -> torch.Tensor:
    """The reference's sinusoidal embedding (scale 1000) of a float t -> [1, dim], or of a tensor of
    B times -> [B, dim] (training). Made on `device` with no host copy, so a CUDA graph can capture it."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=device).float() * -(math.log(10000) / (half - 1)))
    t = torch.full((1,), t, device=device) if isinstance(t, float) else t.reshape(-1).float()
    arg = 1000 * t.unsqueeze(1) * freqs.to(t.device).unsqueeze(0)
    return torch.cat((arg.cos(), arg.sin()), dim=-1)


class Elir(nn.Module):
    """The looped reference model; `eps` is the standard-normal noise the reference draws inside."""

    def __init__(self, arch: ArchConfig, k_steps: int, sigma_s: float):
        super().__init__()
        self.arch, self.k_steps, self.sigma_s = arch, k_steps, sigma_s
        self.enc = Encoder(arch.latent_channels, arch.ae_width)
        self.dec = Decoder(arch.latent_channels, arch.ae_width)
        self.mmse = RRDBNet(arch.latent_channels, arch.rrdb_hid, arch.n_rrdb, arch.mmse_overparam)
        self.fmir = LUNet(arch.ch_mult, arch.n_mid_blocks, arch.latent_channels, arch.unet_hid,
                          arch.latent_channels, arch.t_emb_dim, arch.use_rescale_conv, arch.fmir_overparam)

    def step_times(self) -> list[float]:
        """t_k accumulated as the reference does (`t += 1/K`), so embeddings match bit for bit."""
        times, t = [], 0.0
        for _ in range(self.k_steps):
            times.append(t)
            t += 1 / self.k_steps
        return times

    def latent_flow(self, lq: torch.Tensor, eps: torch.Tensor) -> list[torch.Tensor]:
        """The latent after the coarse estimate and after every Euler step (K+1 tensors)."""
        z = self.mmse(self.enc(lq)) + self.sigma_s * eps
        traj = [z]
        for t in self.step_times():
            z = z + (1 / self.k_steps) * self.fmir(z, time_embedding(t, self.arch.t_emb_dim, z.device).to(z.dtype))
            traj.append(z)
        return traj

    def forward(self, lq: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.dec(self.latent_flow(lq, eps)[-1]), 0, 1)


def build_elir(arch: ArchConfig, k_steps: int, sigma_s: float, state_dict: dict | None = None) -> Elir:
    """The model with `state_dict`'s weights, or freshly initialised without one. Weights about to be
    replaced are never initialised (built on the meta device: the random init costs ~1 s at the presets' sizes)."""
    if state_dict is None:
        return Elir(arch, k_steps, sigma_s).eval()
    model = model_shapes(arch, k_steps, sigma_s).to_empty(device="cpu")
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def model_shapes(arch: ArchConfig, k_steps: int = 1, sigma_s: float = 0.0) -> Elir:
    """The model's structure and tensor shapes, with no storage behind them (meta device)."""
    with torch.device("meta"):
        return Elir(arch, k_steps, sigma_s)
