"""Randomly initialized ELIR models of any preset's shapes: for tests, speed benchmarks and smoke runs
where no trained weights exist. Never a stand-in for quality figures."""

from __future__ import annotations

from pathlib import Path

import torch

from elir_edge.model.arch import ArchConfig, Elir, build_elir
from elir_edge.model.presets import PRESETS, REFERENCE_SHARED


def preset_arch(task: str, overparam: bool = False) -> ArchConfig:
    p = PRESETS[task]
    return ArchConfig(**REFERENCE_SHARED, unet_hid=p.unet_hid, n_mid_blocks=p.n_mid_blocks,
                      fmir_overparam=overparam, mmse_overparam=overparam)


def random_model(arch: ArchConfig, k: int = 3, sigma: float = 0.1, seed: int = 0) -> Elir:
    """Output not saturated by the final clamp, GroupNorm affine away from its identity default,
    so comparisons of such models mean something."""
    torch.manual_seed(seed)
    model = build_elir(arch, k, sigma)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        last = model.dec.layers[-1]
        last.weight.mul_(0.05)
        last.bias.fill_(0.5)
    return model


def save_checkpoint(model: Elir, path: Path, fmt: str, hyper: dict | None = None) -> Path:
    """Write `model` as a release state dict (fmt='release') or a Lightning-style training checkpoint."""
    if fmt == "release":
        torch.save(model.state_dict(), path)
    else:
        obj = {"epoch": 1, "global_step": 100, "pytorch-lightning_version": "2.4.0",
               **{f"state_dict_{p}": getattr(model, p).state_dict() for p in ("fmir", "mmse", "enc", "dec")}}
        if hyper:
            obj["hyper_parameters"] = hyper
        torch.save(obj, path)
    return path
