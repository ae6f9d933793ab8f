"""The evaluation inputs against expectations from outside the code: worked out here from the degradation,
the image and the seeded noise themselves; a second path (image i on its own vs the whole set; seed A vs
seed B). Written for the mutants mutmut left alive (issue 33, benchmarks/results/mutation_eval_inputs.json)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from elir_edge.common.degrade import degrade
from elir_edge.model.eval_inputs import eval_image, eval_inputs, paired_image, paired_inputs
from elir_edge.model.noise import latent_noise

H, W, C = 16, 24, 4


def _images(n=3, shape=(16, 24)):
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n)]


def _chw(img):
    return img.transpose(2, 0, 1).astype(np.float32) / 255


def test_image_i_is_degraded_with_seed_plus_i_and_draws_the_field_of_seed_plus_i():
    imgs = _images()
    es = eval_inputs([(f"n{i}", im) for i, im in enumerate(imgs)], "denoising", H, W, C, seed=40)
    assert es.names == ["n0", "n1", "n2"]
    assert es.lq.shape == (3, 3, H, W) and es.eps.shape == (3, C, H // 8, W // 8) and es.hq.shape == (3, 3, H, W)
    for i, im in enumerate(imgs):
        assert np.array_equal(es.lq[i], _chw(degrade("denoising", im, 40 + i)))
        assert np.array_equal(es.eps[i], latent_noise(C, H, W, 40 + i))
        assert np.array_equal(es.hq[i], _chw(im))
        alone = eval_image(im, i, "denoising", H, W, C, 40)  # a worker reading file i alone
        assert all(np.array_equal(a, b[i]) for a, b in zip(alone, (es.lq, es.eps, es.hq)))
    other = eval_inputs([("n0", imgs[0])], "denoising", H, W, C, seed=41)
    assert not np.array_equal(other.lq[0], es.lq[0]) and not np.array_equal(other.eps[0], es.eps[0])
    assert np.array_equal(other.lq[0], _chw(degrade("denoising", imgs[0], 41)))


def test_images_of_another_size_are_fitted_first_and_their_truth_is_the_fitted_clean_image():
    (img,) = _images(1, (40, 30))
    fitted = np.asarray(ImageOps.fit(Image.fromarray(img), (W, H), Image.BICUBIC))
    lq, eps, hq = eval_image(img, 2, "sr", H, W, C, 7)
    assert np.array_equal(hq, _chw(fitted)) and np.array_equal(lq, _chw(degrade("sr", fitted, 9)))
    assert np.array_equal(eps, latent_noise(C, H, W, 9))


def test_inputs_degraded_already_are_only_fitted_and_have_no_truth():
    imgs = _images(2, (40, 30))
    es = eval_inputs([("a", imgs[0]), ("b", imgs[1])], None, H, W, C, seed=3)
    assert es.hq is None and es.names == ["a", "b"]
    for i, im in enumerate(imgs):
        fitted = np.asarray(ImageOps.fit(Image.fromarray(im), (W, H), Image.BICUBIC))
        assert np.array_equal(es.lq[i], _chw(fitted)) and np.array_equal(es.eps[i], latent_noise(C, H, W, 3 + i))


def test_pairs_keep_their_own_degraded_input_and_truth_each_fitted():
    lqs, hqs = _images(2, (40, 30)), _images(2, (16, 24))[::-1]
    es = paired_inputs(["a", "b"], lqs, hqs, H, W, C, seed=11)
    assert es.names == ["a", "b"]
    for i in range(2):
        fitted = np.asarray(ImageOps.fit(Image.fromarray(lqs[i]), (W, H), Image.BICUBIC))
        assert np.array_equal(es.lq[i], _chw(fitted)) and np.array_equal(es.hq[i], _chw(hqs[i]))
        assert np.array_equal(es.eps[i], latent_noise(C, H, W, 11 + i))
        alone = paired_image(lqs[i], hqs[i], i, H, W, C, 11)
        assert all(np.array_equal(a, b[i]) for a, b in zip(alone, (es.lq, es.eps, es.hq)))
