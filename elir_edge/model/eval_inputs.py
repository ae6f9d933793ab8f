"""The inputs graphs are evaluated and calibrated on, made one way everywhere: images fitted to the graph's
size, degraded the task's way with a seed per image, and eps drawn per image from the same seed
(model.noise.latent_noise), so calibration, bench --data and bench --lq/--hq give image i the same field
for the same seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elir_edge.common.degrade import degrade
from elir_edge.common.images import fit, to_chw
from elir_edge.model.noise import latent_noise


@dataclass
class EvalSet:
    names: list[str]
    lq: np.ndarray  # N x 3 x H x W in [0,1]: what the graph takes
    eps: np.ndarray  # N x C x H/8 x W/8, the same for every artifact compared
    hq: np.ndarray | None  # the ground truth; None where the inputs came degraded already


def _eps(n: int, latent_channels: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.stack([latent_noise(latent_channels, height, width, seed + i) for i in range(n)])


def eval_inputs(images: list[tuple[str, np.ndarray]], task: str | None, height: int, width: int,
                latent_channels: int, seed: int) -> EvalSet:
    """Clean images (HxWx3 uint8) -> degraded by `task` (image i with seed + i), the clean ones as ground
    truth; task None: the images are the inputs already (no ground truth)."""
    clean = [fit(img, height, width) for _, img in images]
    lq = [degrade(task, c, seed + i) for i, c in enumerate(clean)] if task else clean
    return EvalSet([n for n, _ in images], np.stack([to_chw(x) for x in lq]),
                   _eps(len(clean), latent_channels, height, width, seed),
                   np.stack([to_chw(c) for c in clean]) if task else None)


def paired_inputs(names: list[str], lq: list[np.ndarray], hq: list[np.ndarray], height: int, width: int,
                  latent_channels: int, seed: int) -> EvalSet:
    """Degraded inputs with their ground truth, paired by the caller, eps drawn as in eval_inputs."""
    return EvalSet(names, np.stack([to_chw(fit(x, height, width)) for x in lq]),
                   _eps(len(names), latent_channels, height, width, seed),
                   np.stack([to_chw(fit(x, height, width)) for x in hq]))
