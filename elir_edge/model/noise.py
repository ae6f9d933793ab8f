"""The seeded noise ELIR integrates from: eps ~ N(0, I) at latent resolution, reproducible on any CPU.

Export verification, baked-noise graphs, bench and restore draw eps here, so one seed means one field. torch
(its generator is the field's definition) loads when a field is first drawn: a `restore --ray` driver, which
draws none, starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from elir_edge.model.arch import ArchConfig
    from elir_edge.model.settings import RunSettings

ALIGN = 8  # the latent is 1/8 of the image


def seeded_inputs(s: RunSettings, arch: ArchConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """lq uniform in [0,1] and eps ~ N(0, I), reproducible from `seed` on any CPU."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lq = torch.rand(s.batch, 3, s.height, s.width, generator=g)
    eps = torch.randn(s.batch, arch.latent_channels, s.height // 8, s.width // 8, generator=g)
    return lq, eps


def baked_noise(s: RunSettings, arch: ArchConfig, seed: int) -> torch.Tensor:
    """The eps a `--noise baked --seed S` graph carries as a constant."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(s.batch, arch.latent_channels, s.height // 8, s.width // 8, generator=g)


def latent_noise(channels: int, h: int, w: int, seed: int) -> np.ndarray:
    """The seeded eps field for an image of HxW (H, W multiples of 8)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(channels, h // ALIGN, w // ALIGN, generator=g).numpy()
