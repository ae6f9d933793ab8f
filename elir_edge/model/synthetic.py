"""Randomly initialized ELIR models of any preset's shapes: for tests, speed benchmarks and smoke runs
where no trained weights exist. Never a stand-in for quality figures."""

from __future__ import annotations

from pathlib import Path

import torch

from elir_edge.model.arch import ArchConfig, Elir, build_elir

OUTPUT_STD = 0.2  # per output channel, over the probe image's pixels: the output spans [0, 1]


def probe_inputs(seed: int = 0, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random image (something like a photograph, not white noise) and its eps."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=g)
    lq = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    lq = (lq + 0.05 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)
    return lq, torch.randn(1, 16, size // 8, size // 8, generator=g)


def random_model(arch: ArchConfig, k: int = 3, sigma: float = 0.1, seed: int = 0) -> Elir:
    """Random weights scaled on a probe image so that every part of the model shows in the output: each
    block's time term is as large as its conv term, the K Euler steps together move the latent by about
    its own size, and each output channel has mean 0.5 and std OUTPUT_STD before the clamp. A bug in the
    step times, the step count, sigma_s or a fold then moves the output by far more than float rounding."""
    torch.manual_seed(seed)
    model = build_elir(arch, k, sigma)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        lq, eps = probe_inputs(seed)
        eps = eps[:, :arch.latent_channels]
        for _ in range(2):
            _balance_time_terms(model, lq, eps)
        _scale_vector_field(model, lq, eps)
        _spread_output(model, lq, eps)
    return model


def _captured(model: Elir, lq, eps, modules: dict) -> dict[str, list]:
    """Outputs (and, for 'fmir', inputs) of the named modules over one forward pass."""
    seen = {name: [] for name in modules}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: seen[n].append((i[0], o)))
             for name, m in modules.items()]
    try:
        model(lq, eps)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _std(tensors) -> float:
    return float(torch.cat([t.flatten() for t in tensors]).std())


def _balance_time_terms(model: Elir, lq, eps) -> None:
    blocks = model.fmir.resnet_blocks()
    mods = {**{f"b{i}": b.block1 for i, b in enumerate(blocks)}, **{f"m{i}": b.mlp for i, b in enumerate(blocks)}}
    seen = _captured(model, lq, eps, mods)
    for i, b in enumerate(blocks):
        conv = _std([o for _, o in seen[f"b{i}"]])
        time = float(torch.stack([o for _, o in seen[f"m{i}"]]).std())
        b.mlp[1].weight.mul_(conv / time)
        b.mlp[1].bias.mul_(conv / time)


def _scale_vector_field(model: Elir, lq, eps) -> None:
    seen = _captured(model, lq, eps, {"fmir": model.fmir})["fmir"]
    gain = _std([z for z, _ in seen]) / _std([v for _, v in seen])
    model.fmir.final_proj.weight.mul_(gain)
    model.fmir.final_proj.bias.mul_(gain)


def _spread_output(model: Elir, lq, eps) -> None:
    last = model.dec.layers[-1]
    out = _captured(model, lq, eps, {"last": last})["last"][0][1]
    mean, std = out.mean(dim=(0, 2, 3)), out.std(dim=(0, 2, 3))
    scale = OUTPUT_STD / std
    last.weight.mul_(scale[:, None, None, None])
    last.bias.copy_((last.bias - mean) * scale + 0.5)


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
