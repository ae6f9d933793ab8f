"""Calibration inputs for post-training quantization: a folder of real images -> (lq, eps) batches."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from elir_edge.common.degrade import degrade
from elir_edge.common.images import fit, load_images, to_chw
from elir_edge.errors import UserError

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "calibration"  # photographs shipped in the package


def calibration_folder(asked: Path | None, quiet: bool = False) -> Path:
    """--calib, else ./calibration where it exists, else the photographs bundled with elir-edge; says which
    when it chose (so a wheel installed anywhere calibrates, and a user's own folder is never passed over)."""
    if asked is not None:
        return Path(asked)
    here = Path("calibration")
    chosen, why = (here, "./calibration") if here.is_dir() else \
        (BUNDLED, f"the {len(list(BUNDLED.glob('*.png')))} photographs bundled with elir-edge (no ./calibration here)")
    if not quiet:
        print(f"elir-edge quantize: no --calib given: calibrating on {why}", file=sys.stderr)
    return chosen


def calibration_batches(folder: Path, height: int, width: int, latent_channels: int, *, task: str | None,
                        num_images: int | None = None, batch: int = 1, seed: int = 0,
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every image (recursively), RGB, resized and centre-cropped to the graph's input; `task` set means the
    folder holds clean photographs and the task's degradation is synthesized (seeded). eps ~ N(0, I), seeded."""
    images = load_images(Path(folder), "calibration folder")
    if num_images is not None:
        if num_images < 1:
            raise UserError(f"--num-images {num_images}: calibrate on at least one image")
        images = images[:num_images]
    arrays = []
    for i, (_, img) in enumerate(images):
        img = fit(img, height, width)
        arrays.append(to_chw(degrade(task, img, seed + i) if task else img))
    lq = torch.from_numpy(np.stack(arrays))
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(len(arrays), latent_channels, height // 8, width // 8, generator=g)
    return [(lq[i:i + batch], eps[i:i + batch]) for i in range(0, len(arrays), batch)]
