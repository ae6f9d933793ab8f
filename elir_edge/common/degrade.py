"""The paper's degradations, so users with clean photographs can make the task's low-quality inputs.

denoising, sr and inpainting follow the reference datasets (CelebA/FFHQ transforms of ELIR):
Gaussian noise of std 89.6/255; x8 bicubic down + noise 12.8/255 + nearest up; 90 % of pixels masked
+ noise 25.6/255. bfr and bsr are trained on blind degradations in the paper; here they get a
seeded first-order blind chain (blur, x4 down, noise, JPEG, bicubic up). All work on uint8 images
and return uint8, like the reference (noise is rounded and clipped).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.round(img.astype(np.float64) + rng.standard_normal(img.shape) * std), 0, 255).astype(np.uint8)


def _resize(img: np.ndarray, h: int, w: int, method) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), method))


def denoising(img, rng):
    return _noise(img, 89.6, rng)


def sr(img, rng):
    h, w = img.shape[:2]
    small = _resize(img, h // 8, w // 8, Image.BICUBIC)
    return _resize(_noise(small, 12.8, rng), h, w, Image.NEAREST)


def inpainting(img, rng):
    h, w = img.shape[:2]
    keep = np.ones(h * w, np.uint8)
    keep[rng.choice(h * w, int(h * w * 0.9), replace=False)] = 0
    return _noise(img * keep.reshape(h, w, 1), 25.6, rng)


def blind(img, rng):
    h, w = img.shape[:2]
    out = Image.fromarray(img).filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 3.0)))
    out = _noise(np.asarray(out.resize((w // 4, h // 4), Image.BICUBIC)), rng.uniform(1, 25), rng)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(30, 95)))
    return _resize(np.asarray(Image.open(buf).convert("RGB")), h, w, Image.BICUBIC)


DEGRADATIONS = {"denoising": denoising, "sr": sr, "inpainting": inpainting, "bfr": blind, "bsr": blind}


def degrade(task: str, img: np.ndarray, seed: int) -> np.ndarray:
    """The task's low-quality version of an HxWx3 uint8 image, reproducible from `seed`."""
    return DEGRADATIONS[task](img, np.random.default_rng(seed))
