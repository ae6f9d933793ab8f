"""Per-image quality: PSNR (data range 1) and SSIM (torchmetrics' Gaussian-window SSIM)."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two [3,H,W] or [1,3,H,W] images in [0,1]."""
    import torch  # here, not at the top: PSNR alone (the probe a Ray driver runs) needs no torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    ta = torch.as_tensor(np.asarray(a, np.float32)).reshape(1, 3, *np.shape(a)[-2:])
    tb = torch.as_tensor(np.asarray(b, np.float32)).reshape(1, 3, *np.shape(b)[-2:])
    return float(structural_similarity_index_measure(ta, tb, data_range=1.0))
