"""Images in and out and the per-image metrics, against expectations from outside the code: Pillow and
scikit-image computing the same thing, values worked out by hand, and properties (hypothesis: PSNR symmetric
and infinite only on equal arrays). Written for the mutants mutmut left alive (issue 33,
benchmarks/results/mutation_images.json, mutation_metrics.json)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from elir_edge.common import images
from elir_edge.common.metrics import psnr, ssim
from elir_edge.errors import UserError

FAST = settings(max_examples=30, deadline=None)


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(0, 47), st.sampled_from([0.0, 1e-4, 0.3, -1.0]))
def test_psnr_is_symmetric_and_infinite_only_on_equal_arrays(seed, where, delta):
    from skimage.metrics import peak_signal_noise_ratio

    a = np.random.default_rng(seed).random((3, 4, 4))
    b = a.copy()
    b.flat[where] += delta
    assert psnr(a, b) == psnr(b, a)
    assert (psnr(a, b) == math.inf) == (delta == 0)
    if delta:
        assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), rel=1e-12)
        assert psnr(a, b) == pytest.approx(10 * math.log10(48 / delta ** 2), rel=1e-12)  # mse = delta^2 / 48
        assert psnr(a * 255, b * 255, data_range=255) == pytest.approx(psnr(a, b), rel=1e-9)


def test_ssim_reads_a_batch_of_one_like_the_image_and_is_one_only_on_equal_images():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.random((3, 24, 20)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert ssim(a[None], b[None]) == ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0) and ssim(a, b) < 0.99
    want = structural_similarity(a, b, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(want, abs=0.02)  # torchmetrics' and scikit-image's borders differ a little


def test_to_chw_and_back_by_hand():
    img = np.array([[[0, 128, 255], [1, 2, 3]]], np.uint8)  # 1 x 2 pixels
    chw = images.to_chw(img)
    assert chw.shape == (3, 1, 2) and chw.dtype == np.float32 and chw.flags.c_contiguous
    assert np.allclose(chw[:, 0, 0], [0, 128 / 255, 1]) and np.allclose(chw[:, 0, 1], [1 / 255, 2 / 255, 3 / 255])
    assert np.array_equal(images.to_uint8(chw), img)


def test_fit_covers_then_centre_crops_like_pillows_fit():
    img = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = images.fit(img, 16, 24)
    assert out.shape == (16, 24, 3)
    assert np.array_equal(out, np.asarray(ImageOps.fit(Image.fromarray(img), (24, 16), Image.BICUBIC)))
    assert images.fit(img, 30, 50) is img  # the graph's size already: untouched
    assert images.fit(img, 50, 30).shape == (50, 30, 3)


def test_images_of_every_mode_come_out_as_rgb_by_hand(tmp_path):
    Image.fromarray(np.full((2, 3), 32768, np.uint16)).save(tmp_path / "g16.png")
    assert np.array_equal(images.read_rgb(tmp_path / "g16.png"), np.full((2, 3, 3), 128, np.uint8))  # 32768/65535
    Image.fromarray(np.full((2, 3), 200, np.int32), "I").save(tmp_path / "i.tif")  # 32-bit, values up to 255
    assert np.array_equal(images.read_rgb(tmp_path / "i.tif"), np.full((2, 3, 3), 200, np.uint8))
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 1] = 255
    la[0, 0] = (0, 0)  # one fully transparent pixel: the white it lies on
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert images.read_rgb(tmp_path / "la.png").tolist() == [[[255] * 3, [0] * 3], [[0] * 3, [0] * 3]]
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert images.read_rgb(tmp_path / "p.png").tolist() == [[[255, 255, 255], [40, 50, 60]]]
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    assert np.array_equal(images.read_rgb(tmp_path / "plain.png"), rgb)


def test_sixteen_bit_levels_are_scaled_to_eight_by_hand(tmp_path):
    """A 16-bit file whose brightest value passes 255 is read on 65535's scale (33025 -> 128.5 + 0.5 -> 129),
    one that stays within 255 on 255's (255 -> 255, 200 -> 200); big-endian TIFFs alike."""
    def read(values, mode="I;16", ext="png"):
        dtype = ">u2" if mode == "I;16B" else "<u2"
        im = Image.frombytes(mode, (len(values), 1), np.array(values, dtype).tobytes())
        im.save(tmp_path / f"x.{ext}")
        got = images.read_rgb(tmp_path / f"x.{ext}")
        assert got.shape == (1, len(values), 3) and (got == got[..., :1]).all()
        return got[0, :, 0].tolist()

    assert read([33025, 65535, 0, 256]) == [129, 255, 0, 1]
    assert read([255, 200, 0]) == [255, 200, 0]
    assert read([256, 65535], "I;16B", "tif") == [1, 255]
    assert read([255, 1], "I;16B", "tif") == [255, 1]


def test_single_frame_files_are_read_without_a_warning(tmp_path):
    img = np.random.default_rng(4).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ext in ("png", "bmp", "tif"):
            Image.fromarray(img).save(tmp_path / f"s.{ext}")
            got = images.read_rgb(tmp_path / f"s.{ext}")
            assert got.dtype == np.uint8 and np.array_equal(got, img)
        Image.fromarray(img[..., 0]).save(tmp_path / "gray.png")  # grayscale comes out as three equal channels
        assert np.array_equal(images.read_rgb(tmp_path / "gray.png"), np.repeat(img[..., :1], 3, axis=2))


def test_a_rotated_photo_is_read_upright_and_of_many_frames_the_first(tmp_path):
    img = np.zeros((2, 4, 3), np.uint8)
    img[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=100)
    assert images.read_rgb(tmp_path / "r.jpg").shape == (4, 2, 3)
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "a.gif") as im:
        im.seek(1)  # the file's second frame is there, and differs
        assert abs(int(np.asarray(im.convert("RGB")).mean()) - 200) <= 2
    with pytest.warns(UserWarning, match=r"a\.gif has 2 frames: used the first"):
        first = images.read_rgb(tmp_path / "a.gif")
    assert abs(int(first.mean()) - 10) <= 2


def test_folders_list_their_images_sorted_and_say_what_they_skipped(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    for name in ("b.png", "sub/a.jpg", "C.PNG"):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(d / name)
    (d / "notes.md").write_text("sources")
    (d / ".hidden.png").write_text("x")
    assert images.list_images(d) == [d / "C.PNG", d / "b.png", d / "sub" / "a.jpg"]  # notes: not warned about
    (d / "data.csv").write_text("1")
    with pytest.warns(UserWarning, match=r"skipped 1 non-image file\(s\) in .*d, e\.g\. data\.csv"):
        images.list_images(d)
    with pytest.raises(UserError, match=r"^calibration folder .*gone does not exist: give a folder of images$"):
        images.list_images(tmp_path / "gone", "calibration folder")
    with pytest.raises(UserError, match=r"^image folder .*notes\.md is not a folder: give a folder of images$"):
        images.list_images(d / "notes.md")
    (tmp_path / "e").mkdir()
    with pytest.raises(UserError, match=r"^image folder .*e holds no images \(PNG, JPEG, TIFF, WebP, GIF or any kind "
                                        r"Pillow reads\): add some$"):
        images.list_images(tmp_path / "e")


def test_unreadable_images_are_skipped_by_name_and_none_readable_is_refused(tmp_path):
    d = tmp_path / "d"
    (d / "s").mkdir(parents=True)
    img = np.random.default_rng(2).integers(0, 256, (3, 2, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "s" / "ok.png")
    (d / "bad.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=r"skipped unreadable image bad\.png: UnidentifiedImageError"):
        got = images.load_images(d)
    assert len(got) == 1 and got[0][0] == "s/ok.png" and np.array_equal(got[0][1], img)
    (d / "s" / "ok.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match=r"^held-out folder .*d has no readable images: check the files$"):
            images.load_images(d, "held-out folder")


def test_our_pngs_carry_the_tag_and_their_text_and_nothing_else_does(tmp_path):
    img = np.zeros((2, 2, 3), np.uint8)
    images.save_png(img, tmp_path / "ours.png", {"key": "value"})
    assert images.png_text(tmp_path / "ours.png") == {"Software": "elir-edge", "key": "value"}
    assert images.written_by_us(tmp_path / "ours.png") and images.tagged({"Software": "elir-edge"})
    images.save_png(Image.fromarray(img), tmp_path / "pil.png")
    assert images.written_by_us(tmp_path / "pil.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ours.png")), img)
    Image.fromarray(img).save(tmp_path / "theirs.png")
    Image.fromarray(img).save(tmp_path / "theirs.jpg")
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert not images.written_by_us(tmp_path / "theirs.png") and images.png_text(tmp_path / "theirs.jpg") == {}
    assert images.png_text(tmp_path / "junk.png") == {} and not images.written_by_us(tmp_path / "missing.png")
    assert not images.tagged({"Software": "other"}) and not images.tagged({})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
