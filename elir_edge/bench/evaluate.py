"""Restoration quality on a set of clean images: degrade with a seed, restore, compare."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from elir_edge.common.degrade import degrade
from elir_edge.common.images import fit, to_chw
from elir_edge.common.metrics import psnr, ssim


@dataclass
class EvalSet:
    names: list[str]
    hq: np.ndarray  # N x 3 x H x W in [0,1], ground truth
    lq: np.ndarray  # the task's degraded inputs
    eps: np.ndarray  # N x C x H/8 x W/8, the same for every artifact compared


def make_eval_set(images: list[tuple[str, np.ndarray]], task: str, height: int, width: int,
                  latent_channels: int, seed: int) -> EvalSet:
    hq = [fit(img, height, width) for _, img in images]
    lq = [degrade(task, h, seed + i) for i, h in enumerate(hq)]
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(len(hq), latent_channels, height // 8, width // 8, generator=g).numpy()
    return EvalSet([n for n, _ in images], np.stack([to_chw(h) for h in hq]), np.stack([to_chw(x) for x in lq]), eps)


def per_image(outputs: np.ndarray, targets: np.ndarray) -> dict[str, list[float]]:
    return {"psnr": [psnr(o, t) for o, t in zip(outputs, targets)],
            "ssim": [ssim(o, t) for o, t in zip(outputs, targets)]}
