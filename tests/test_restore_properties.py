"""Tiling against properties that hold whatever the sizes (hypothesis): the tiles cover every pixel, their
origins are aligned to the latent grid, the blend weights sum to 1 (so a run that returns its input gives the
image back exactly), one batch size gives what another gives, and every tile sees its slice of one noise
field. Written for the mutants mutmut left alive (issue 33, benchmarks/results/mutation_tiling.json)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from elir_edge.model.noise import latent_noise
from elir_edge.restore.tiling import origins, ramp, restore_tiled, restore_whole

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(st.integers(1, 700), st.sampled_from([16, 32, 64, 128]), st.integers(0, 40))
def test_origins_cover_every_pixel_aligned_with_the_overlap_asked(length, tile, overlap):
    overlap = min(overlap, tile - 8)
    starts = origins(length, tile, overlap)
    assert starts[0] == 0 and all(s % 8 == 0 for s in starts) and starts == sorted(set(starts))
    covered = np.zeros(length + tile, int)
    for s in starts:
        covered[s:s + tile] += 1
    assert (covered[:length] >= 1).all()
    assert starts[-1] + tile < max(length, tile) + 8  # the last tile overhangs the image by less than 8 pixels
    if length <= tile:
        assert starts == [0]
    for a, b in zip(starts, starts[1:]):  # neighbours overlap by at least `overlap` (steps of whole 8s)
        assert b - a >= 8 and a + tile - b >= min(overlap, tile - 8)


@FAST
@given(st.sampled_from([8, 16, 32]), st.integers(0, 8), st.booleans(), st.booleans())
def test_a_ramp_rises_over_the_overlap_at_inner_edges_only(tile, overlap, start, end):
    overlap = min(overlap, tile // 2)  # restore's overlaps are under half a tile
    w = ramp(tile, overlap, start, end)
    r = np.arange(1, overlap + 1) / (overlap + 1)
    assert w.shape == (tile,) and ((w > 0) & (w <= 1)).all()
    assert np.allclose(w[:overlap], r if start else 1) and np.allclose(w[tile - overlap:], r[::-1] if end else 1)
    assert np.allclose(w[overlap:tile - overlap], 1)


def _identity(lq, eps):
    return lq.copy()


@FAST
@given(st.integers(1, 90), st.integers(1, 90), st.sampled_from([16, 32]), st.integers(0, 12), st.integers(1, 4))
def test_weights_sum_to_one_so_a_run_returning_its_input_gives_the_image_back(h, w, tile, overlap, batch):
    image = np.random.default_rng(h * 100 + w).random((3, h, w)).astype(np.float32)
    out = restore_tiled(image, _identity, tile, overlap, 4, seed=0, batch=batch)
    assert out.shape == (3, h, w) and out.dtype == np.float32
    assert np.allclose(out, image, atol=1e-6)


def _noise_out(lq, eps):  # each output pixel: the eps value of its latent cell, channel 0..2
    return np.repeat(np.repeat(eps[:, :3], 8, axis=2), 8, axis=3)


@FAST
@given(st.integers(17, 80), st.integers(17, 80), st.integers(0, 8), st.integers(0, 3))
def test_every_tile_sees_its_slice_of_one_field_whatever_the_batch(h, w, overlap, seed):
    image = np.zeros((3, h, w), np.float32)
    one = restore_tiled(image, _noise_out, 16, overlap, 4, seed=seed, batch=1)
    ph, pw = origins(h, 16, overlap)[-1] + 16, origins(w, 16, overlap)[-1] + 16
    field = latent_noise(4, max(ph, h), max(pw, w), seed)
    want = np.repeat(np.repeat(field[:3], 8, axis=1), 8, axis=2)[:, :h, :w]
    assert np.allclose(one, want, atol=1e-5)
    assert np.array_equal(restore_tiled(image, _noise_out, 16, overlap, 4, seed=seed, batch=3), one)


def test_a_tile_padded_past_the_image_sees_the_mirrored_image():
    """An image 20 wide in tiles of 16: the second tile starts at 8 and reads 4 columns past the edge, the
    image reflected there (no constant border the network would restore as an edge)."""
    image = np.random.default_rng(0).random((3, 16, 20)).astype(np.float32)
    seen = []

    def record(lq, eps):
        seen.extend(lq)
        return lq

    restore_tiled(image, record, 16, 4, 4)
    assert len(seen) == 2 and np.array_equal(seen[0], image[:, :, :16])
    assert np.array_equal(seen[1][:, :, :12], image[:, :, 8:])
    assert np.array_equal(seen[1][:, :, 12:], image[:, :, 18:14:-1])
    tall = np.random.default_rng(1).random((3, 20, 5)).astype(np.float32)  # too narrow to mirror: edge pixels
    seen.clear()
    restore_tiled(tall, record, 16, 4, 4)
    assert np.array_equal(seen[0][:, :, 5:], np.repeat(tall[:, :16, 4:5], 11, axis=2))


def test_a_whole_image_runs_once_on_the_field_of_its_seed():
    image = np.random.default_rng(2).random((3, 16, 24))
    calls = []

    def run(lq, eps):
        calls.append((lq, eps))
        return lq * 2

    out = restore_whole(image, run, 4, seed=9)
    (lq, eps), = calls
    assert lq.dtype == np.float32 and lq.shape == (1, 3, 16, 24) and np.array_equal(lq[0], image.astype(np.float32))
    assert np.array_equal(eps[0], latent_noise(4, 16, 24, 9)) and np.allclose(out, image * 2)


def test_where_two_tiles_disagree_the_blend_follows_the_ramps_worked_out_by_hand():
    """24 px in tiles of 16 with an overlap of 8: tiles at 0 and 8. Over columns 8..15 the first tile's weight
    falls (8 - k)/9 and the second's rises (k + 1)/9, so a first tile of 0s and a second of 1s blend to (k + 1)/9;
    the same down the rows. Outside the overlap each tile is alone."""
    calls = iter(range(10))

    def tile_index(lq, eps):
        return np.stack([np.full(x.shape, float(next(calls)), np.float32) for x in lq])

    ramp8 = np.arange(1, 9) / 9
    wide = restore_tiled(np.zeros((3, 16, 24), np.float32), tile_index, 16, 8, 4)
    assert np.allclose(wide[:, :, :8], 0) and np.allclose(wide[:, :, 16:], 1)
    assert np.allclose(wide[:, :, 8:16], ramp8[None, None, :], atol=1e-6)
    calls = iter(range(10))
    tall = restore_tiled(np.zeros((3, 24, 16), np.float32), tile_index, 16, 8, 4, batch=2)
    assert np.allclose(tall[:, 8:16, :], ramp8[None, :, None], atol=1e-6) and np.allclose(tall[:, 16:], 1)
    calls = iter(range(10))  # 24 x 24: tiles 0..3 at (0,0), (0,8), (8,0), (8,8); in the corner both ramps at once:
    both = restore_tiled(np.zeros((3, 24, 24), np.float32), tile_index, 16, 8, 4)
    up = ramp8  # 0 dn*dn + 1 dn*up_x + 2 up_y*dn + 3 up_y*up_x = up_x + 2 up_y, as dn + up = 1
    assert np.allclose(both[:, 8:16, 8:16], (up[None, :] + 2 * up[:, None])[None], atol=1e-6)


def test_a_large_overlap_blends_only_at_inner_edges_worked_out_by_hand():
    """40 rows in tiles of 32 overlapping by 24 (restore allows any overlap below the tile): tiles at 0 and 8.
    The first tile ramps down over its last 24 rows, (32 - g)/25 at row g, the second up over its first 24,
    (g - 7)/25; neither ramps at the image's own edges. A first tile of 0s and a second of 1s give (g - 7)/25."""
    def blend(h, w, batch=1):
        calls = iter(range(10))
        return restore_tiled(np.zeros((3, h, w), np.float32),
                             lambda lq, eps: np.stack([np.full(x.shape, float(next(calls)), np.float32) for x in lq]),
                             32, 24, 4, batch=batch)

    g = np.arange(8, 32)
    rows = blend(40, 32)
    assert np.allclose(rows[:, :8], 0) and np.allclose(rows[:, 32:], 1)
    assert np.allclose(rows[0, 8:32, 0], (g - 7) / 25, atol=1e-6)
    cols = blend(32, 40, batch=2)
    assert np.allclose(cols[0, 0, 8:32], (g - 7) / 25, atol=1e-6) and np.allclose(cols[:, :, 32:], 1)


def test_origins_step_by_the_largest_aligned_stride_the_overlap_leaves():
    """Tiles of 32 overlapping by 8 step by 24; by 12, by 16 (20 rounded down to 8s); the last one aligned."""
    assert origins(100, 32, 8) == [0, 24, 48, 72]
    assert origins(100, 32, 12) == [0, 16, 32, 48, 64, 72]
    assert origins(256, 128, 32) == [0, 96, 128]
    assert origins(129, 128, 0) == [0, 8] and origins(128, 128, 32) == [0]


def test_an_image_as_tall_as_its_padding_is_padded_with_its_edge():
    """8 rows in tiles of 16: 8 rows of padding, as many as the image has, are its last row repeated."""
    image = np.random.default_rng(3).random((3, 8, 20)).astype(np.float32)
    seen = []

    def record(lq, eps):
        seen.extend(lq)
        return lq

    restore_tiled(image, record, 16, 4, 4)
    assert np.array_equal(seen[0][:, 8:, :], np.repeat(image[:, 7:8, :16], 8, axis=1))
    seen.clear()
    narrow = np.ascontiguousarray(image.transpose(0, 2, 1))  # 20 rows, 8 columns
    restore_tiled(narrow, record, 16, 4, 4)
    assert np.array_equal(seen[0][:, :, 8:], np.repeat(narrow[:, :16, 7:8], 8, axis=2))
