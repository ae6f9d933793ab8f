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


def _amplitude(img: np.ndarray, period: float) -> float:
    """Amplitude of the horizontal sinusoid of `period` pixels in an HxWx3 image (its Fourier coefficient)."""
    x = np.arange(img.shape[1])
    return float(2 * np.abs((img.astype(np.float64) * np.exp(-2j * np.pi * x / period)[None, :, None]).mean()))


@pytest.mark.parametrize("task", ["bfr", "bsr"])
@pytest.mark.parametrize("seed", [2, 3, 4, 11])  # blur sigma 0.93, 0.44, 2.84, 0.56 (the first draw of the seed)
def test_blind_chain_blurs_by_its_sigma_and_keeps_a_quarter_of_the_resolution(task, seed):
    """Two sinusoids through the chain, with the blur sigma and noise std drawn as the chain draws them (the
    seed's first two uniforms). A period of 64 px keeps exactly the Gaussian blur's transfer exp(-2 pi^2 s^2/P^2)
    (resampling and JPEG pass a 16-px period of the 1/4 image), within 3 noise standard errors of the estimate;
    a period of 6 px is below what a 1/4-resolution image can hold (8 px) and is gone, where a x2 chain with a
    blur under 1 px would keep over half of it. Caught: x2 instead of x4, the blur's sigma not the drawn one."""
    x = np.arange(256)
    a = 50.0
    img = 128 + a * np.sin(2 * np.pi * x / 64) + a * np.sin(2 * np.pi * x / 6)
    img = np.broadcast_to(np.round(img)[None, :, None], (256, 256, 3)).astype(np.uint8)
    rng = np.random.default_rng(seed)
    blur, noise = rng.uniform(0.2, 3.0), rng.uniform(1, 25)
    out = degrade(task, img, seed)
    assert np.array_equal(out, degrade(task, img, seed)) and not np.array_equal(out, degrade(task, img, seed + 1))
    kept = _amplitude(out, 64) / _amplitude(img, 64)
    stderr = 2 * noise / np.sqrt(3 * 64 * 64) / a  # noise of the 1/4 image (3 x 64 x 64 samples) in the estimate
    assert kept == pytest.approx(np.exp(-2 * np.pi ** 2 * blur ** 2 / 64 ** 2), abs=0.01 + 3 * stderr)
    assert _amplitude(out, 6) / _amplitude(img, 6) < 0.1
