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


def eval_image(img: np.ndarray, index: int, task: str, height: int, width: int, latent_channels: int,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image `index` of a set on its own (lq, eps, hq), exactly as eval_inputs makes it: a worker that reads
    one file gives it the same inputs as a process that reads the whole folder."""
    clean = fit(img, height, width)
    return (to_chw(degrade(task, clean, seed + index)), latent_noise(latent_channels, height, width, seed + index),
            to_chw(clean))


def paired_image(lq: np.ndarray, hq: np.ndarray, index: int, height: int, width: int, latent_channels: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A degraded image with its ground truth, as paired_inputs makes image `index`."""
    return (to_chw(fit(lq, height, width)), latent_noise(latent_channels, height, width, seed + index),
            to_chw(fit(hq, height, width)))


def _stacked(names: list[str], parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> EvalSet:
    lq, eps, hq = (np.stack(x) for x in zip(*parts))
    return EvalSet(names, lq, eps, hq)


def eval_inputs(images: list[tuple[str, np.ndarray]], task: str | None, height: int, width: int,
                latent_channels: int, seed: int) -> EvalSet:
    """Clean images (HxWx3 uint8) -> degraded by `task` (image i with seed + i), the clean ones as ground
    truth; task None: the images are the inputs already (no ground truth)."""
    names = [n for n, _ in images]
    if task is None:
        return EvalSet(names, np.stack([to_chw(fit(img, height, width)) for _, img in images]),
                       _eps(len(images), latent_channels, height, width, seed), None)
    return _stacked(names, [eval_image(img, i, task, height, width, latent_channels, seed)
                            for i, (_, img) in enumerate(images)])


def paired_inputs(names: list[str], lq: list[np.ndarray], hq: list[np.ndarray], height: int, width: int,
                  latent_channels: int, seed: int) -> EvalSet:
    """Degraded inputs with their ground truth, paired by the caller, eps drawn as in eval_inputs."""
    return _stacked(names, [paired_image(a, b, i, height, width, latent_channels, seed)
                            for i, (a, b) in enumerate(zip(lq, hq))])
