"""The task degradations against the reference's numbers (ELIR_SPEC / the datasets' transforms), measured
with statistics computed here, independently of the code."""

import numpy as np
import pytest
from PIL import Image

from elir_edge.common.degrade import degrade


def _mad_sigma(x: np.ndarray) -> float:
    """Noise sigma from the median absolute deviation: robust to the clipping at 0 and 255."""
    return float(np.median(np.abs(x - np.median(x))) / 0.6745)


def test_denoising_adds_gaussian_noise_of_std_89_6():
    img = np.full((256, 256, 3), 128, np.uint8)
    out = degrade("denoising", img, seed=0).astype(np.float64)
    assert _mad_sigma(out - 128) == pytest.approx(89.6, rel=0.03)
    assert out.min() == 0 and out.max() == 255  # clipped, rounded, uint8 like the reference


def test_sr_is_x8_bicubic_down_noise_and_nearest_up():
    rng = np.random.default_rng(1)
    img = np.kron(rng.integers(0, 255, (32, 32, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    out = degrade("sr", img, seed=0)
    small = out[::8, ::8]
    assert np.array_equal(out, np.repeat(np.repeat(small, 8, 0), 8, 1))  # nearest upsampling of a 1/8 image
    bicubic = np.asarray(Image.fromarray(img).resize((32, 32), Image.BICUBIC), np.float64)
    assert _mad_sigma(small - bicubic) == pytest.approx(12.8, rel=0.1)


def test_inpainting_masks_90_percent_of_pixels():
    img = np.full((128, 128, 3), 255, np.uint8)
    out = degrade("inpainting", img, seed=0)
    masked = (out < 128).all(axis=2)  # a masked pixel is black plus noise of 25.6 in every channel
    assert masked.mean() == pytest.approx(0.9, abs=0.01)
    assert ((out < 128).any(axis=2) == masked).mean() > 0.99  # the mask covers all three channels together
    assert _mad_sigma(out[~masked].astype(np.float64) - 255) < 30  # kept pixels: 255 minus clipped noise


@pytest.mark.parametrize("task", ["bfr", "bsr"])
def test_blind_chain_degrades_reproducibly(task):
    rng = np.random.default_rng(2)
    img = np.kron(rng.integers(0, 255, (16, 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    a, b, c = degrade(task, img, 5), degrade(task, img, 5), degrade(task, img, 6)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    mse = np.mean((a.astype(np.float64) - img) ** 2)
    assert 10 < 10 * np.log10(255 ** 2 / mse) < 35  # visibly degraded, still the same picture
