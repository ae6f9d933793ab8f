"""Resolve K, sigma_s, image size and batch from the task preset, the checkpoint and the user's overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from elir_edge.errors import UserError
from elir_edge.model.presets import PRESETS, REFERENCE_SHARED, task_names

SIZE_MULTIPLE = 32  # every image side: the latent is 1/8 of it and the U-Net halves the latent twice

if TYPE_CHECKING:  # parse_image_size serves the CLI's argument check without torch
    from elir_edge.model.arch import ArchConfig


@dataclass(frozen=True)
class RunSettings:
    task: str
    k_steps: int
    sigma_s: float
    height: int
    width: int
    batch: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


def parse_image_size(text: str) -> tuple[int, int]:
    """'256' or '256x384' (H x W)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise UserError(f"--image-size {text!r} is not a size: write H or HxW, e.g. 256 or 256x384") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise UserError(f"--image-size {text!r} is not a size: write H or HxW, e.g. 256 or 256x384")
    return parts[0], parts[1]


def matching_presets(arch: ArchConfig) -> list[str]:
    """Presets whose published network has exactly these shapes."""
    ours = arch.collapsed().to_dict()
    shared_ok = all(ours[k] == (list(v) if isinstance(v, tuple) else v) for k, v in REFERENCE_SHARED.items())
    return [p.name for p in PRESETS.values()
            if shared_ok and p.unet_hid == arch.unet_hid and p.n_mid_blocks == arch.n_mid_blocks]


def _describe(arch: ArchConfig) -> str:
    return f"U-Net width {arch.unet_hid}, {arch.n_mid_blocks} mid block(s)"


def resolve_settings(arch: ArchConfig, task: str | None = None, steps: int | None = None,
                     sigma: float | None = None, image_size: tuple[int, int] | None = None,
                     batch: int = 1, hyper: dict | None = None) -> RunSettings:
    hyper = hyper or {}
    fits = matching_presets(arch)
    if task is not None and task not in PRESETS:
        raise UserError(f"unknown task {task!r}: choose one of {task_names()}")
    if task is not None and fits and task not in fits:
        raise UserError(f"--task {task} contradicts the checkpoint ({_describe(arch)}, the shape of "
                        f"{', '.join(fits)}): pass --task {' or '.join(fits)}")
    task = task or hyper.get("task") or (fits[0] if len(fits) == 1 else None)
    if task is None:
        choices = ", ".join(fits) if fits else task_names().replace("|", ", ")
        raise UserError(f"cannot tell the task from the checkpoint ({_describe(arch)}): "
                        f"pass --task, one of {choices}")
    if task not in PRESETS:
        raise UserError(f"unknown task {task!r} in the checkpoint: pass --task, one of {task_names()}")
    preset = PRESETS[task]
    k = steps if steps is not None else hyper.get("k_steps", preset.k_steps)
    s = sigma if sigma is not None else hyper.get("sigma_s", preset.sigma_s)
    if image_size is None:
        image_size = (hyper.get("image_size", preset.image_size),) * 2
    h, w = int(image_size[0]), int(image_size[1])
    if int(k) < 1:
        raise UserError(f"--steps {k}: ELIR needs at least one Euler step; pass --steps 1 or more")
    if float(s) < 0:
        raise UserError(f"--sigma {s}: the noise scale must be >= 0")
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        m = SIZE_MULTIPLE
        raise UserError(f"image size {h}x{w} is not a multiple of {m} (latent is 1/8, the U-Net halves it twice): "
                        f"use e.g. {max(m, h // m * m)}x{max(m, w // m * m)}")
    if batch < 1:
        raise UserError(f"--batch {batch}: the batch must be at least 1")
    return RunSettings(task=task, k_steps=int(k), sigma_s=float(s), height=h, width=w, batch=int(batch))
