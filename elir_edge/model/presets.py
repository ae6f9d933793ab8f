"""The task presets of ELIR's reference inference configs (see shared ELIR_SPEC)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads the presets' names without importing torch
    from elir_edge.model.arch import ArchConfig


@dataclass(frozen=True)
class TaskPreset:
    name: str
    description: str
    k_steps: int
    sigma_s: float
    image_size: int
    unet_hid: int
    n_mid_blocks: int
    paper_fps_2080ti: float


PRESETS: dict[str, TaskPreset] = {
    p.name: p
    for p in (
        TaskPreset("bfr", "blind face restoration", 5, 0.1, 512, 128, 3, 19.51),
        TaskPreset("sr", "face super-resolution x8", 3, 0.1, 256, 128, 1, 49.5),
        TaskPreset("denoising", "face denoising", 3, 0.025, 256, 128, 1, 49.5),
        TaskPreset("inpainting", "face inpainting", 3, 0.1, 256, 128, 1, 49.5),
        TaskPreset("bsr", "blind super-resolution x4 (ImageNet)", 3, 0.04, 256, 96, 1, 52.20),
    )
}

# Shared by every published preset: only U-Net width and mid-block count tell them apart.
REFERENCE_SHARED = dict(latent_channels=16, ae_width=64, ch_mult=(1, 2, 1, 2), t_emb_dim=160,
                        rrdb_hid=96, n_rrdb=3, use_rescale_conv=True)


def task_names() -> str:
    return "|".join(PRESETS)


def preset_arch(task: str, overparam: bool = False) -> ArchConfig:
    from elir_edge.model.arch import ArchConfig

    p = PRESETS[task]
    return ArchConfig(**REFERENCE_SHARED, unet_hid=p.unet_hid, n_mid_blocks=p.n_mid_blocks,
                      fmir_overparam=overparam, mmse_overparam=overparam)


def is_paper_size(arch_json: str | None, size: tuple[int, int], preset: TaskPreset) -> bool:
    """Whether an artifact (its ONNX's `arch` metadata, its H, W) is the paper's full-size network at the
    preset's image size, so its speed can stand beside the paper's figure."""
    from elir_edge.model.arch import ArchConfig

    try:
        arch = ArchConfig.from_dict(json.loads(arch_json))
    except (KeyError, TypeError, ValueError):
        return False
    return arch == preset_arch(preset.name).collapsed() and tuple(size) == (preset.image_size,) * 2
