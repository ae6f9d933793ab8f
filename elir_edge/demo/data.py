"""Real photographs that ship inside scikit-image, split into training, calibration and held-out sets.

Only public-domain / CC0 images are used (licences from scikit-image's own docstrings; listed in
IMAGES.md). Held-out images are never seen by training or calibration.

    python -m elir_edge.demo.data   # (re)writes calibration/ and elir_edge/demo/heldout/
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from elir_edge.demo import CALIBRATION_DIR, HELDOUT_DIR

# name in skimage.data -> licence as its docstring states it
TRAINING = {
    "coffee": "CC0 (Rachel Michetti)",
    "rocket": "public domain (SpaceX)",
    "hubble_deep_field": "public domain (NASA)",
    "retina": "CC0 1.0",
    "camera": "CC0 (Lav Varshney), grayscale",
    "brick": "CC0 (CC0Textures), grayscale",
    "grass": "CC0 (CC0Textures), grayscale",
    "gravel": "CC0 (CC0Textures), grayscale",
}
HELDOUT = {
    "astronaut": "public domain (NASA)",
    "chelsea": "CC0 (Stefan van der Walt)",
}
CROP = 256


def load(name: str) -> np.ndarray:
    """An HxWx3 uint8 RGB image from scikit-image's bundled data (grayscale repeated to RGB)."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def crops(img: np.ndarray, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(img[y:y + size, x:x + size])
    return out


def grid_crops(img: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping crops covering the image (held-out images are used whole, crop by crop)."""
    h, w = img.shape[:2]
    return [img[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def write_sets(calibration_dir: Path = CALIBRATION_DIR, heldout_dir: Path = HELDOUT_DIR, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    calibration_dir.mkdir(parents=True, exist_ok=True)
    heldout_dir.mkdir(parents=True, exist_ok=True)
    colour = [n for n, lic in TRAINING.items() if "grayscale" not in lic]
    for name in colour:  # 3 calibration crops from each colour training photograph
        for i, c in enumerate(crops(load(name), 3, CROP, rng)):
            Image.fromarray(c).save(calibration_dir / f"{name}_{i}.png")
    for name in HELDOUT:
        for i, c in enumerate(grid_crops(load(name), CROP)):
            Image.fromarray(c).save(heldout_dir / f"{name}_{i}.png")


if __name__ == "__main__":
    write_sets()
    print(f"wrote {CALIBRATION_DIR} and {HELDOUT_DIR}")
