"""Calibration inputs for post-training quantization: a folder of real images -> (lq, eps) batches."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from elir_edge.common.images import load_images
from elir_edge.errors import UserError
from elir_edge.model.eval_inputs import eval_inputs

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
    es = eval_inputs(images, task, height, width, latent_channels, seed)
    lq, eps = torch.from_numpy(es.lq), torch.from_numpy(es.eps)
    return [(lq[i:i + batch], eps[i:i + batch]) for i in range(0, len(lq), batch)]
