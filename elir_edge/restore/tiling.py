"""Overlapping tiles with smooth blending, for images larger than the graph's fixed input.

Tile origins are multiples of 8 so every tile's eps is a slice of one latent-resolution noise field
(overlapping tiles see the same noise). Each tile's output is weighted by a separable ramp that rises
over the overlap at inner edges only, and the sum is normalized: a result that does not depend on
the tile (a constant, a function of position) comes out exactly, with no seam.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from elir_edge.model.noise import ALIGN, latent_noise


def origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of `tile`, overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    step = max(ALIGN, (tile - overlap) // ALIGN * ALIGN)
    starts = list(range(0, length - tile, step))
    last = (length - tile + ALIGN - 1) // ALIGN * ALIGN  # aligned; may overhang by < 8 px (padded)
    return starts + [last] if not starts or last > starts[-1] else starts


def ramp(tile: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    w = np.ones(tile, np.float64)
    if overlap > 0:
        r = (np.arange(overlap) + 1) / (overlap + 1)
        if ramp_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if ramp_end:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def restore_whole(image: np.ndarray, run: Callable, latent_channels: int, seed: int = 0) -> np.ndarray:
    """One run on an image that already has the graph's input size."""
    _, h, w = image.shape
    return run(image[None].astype(np.float32), latent_noise(latent_channels, h, w, seed)[None])[0]


def restore_tiled(image: np.ndarray, run: Callable, tile: int, overlap: int, latent_channels: int,
                  seed: int = 0, batch: int = 1) -> np.ndarray:
    """image 3xHxW in [0,1]; run(lq Nx3xTxT, eps NxCxT/8xT/8) -> Nx3xTxT. Returns 3xHxW.
    One seeded eps field covers the whole (padded) image; each tile takes its slice."""
    _, h, w = image.shape
    ys, xs = origins(h, tile, overlap), origins(w, tile, overlap)
    ph, pw = max(ys[-1] + tile, h), max(xs[-1] + tile, w)
    eps = latent_noise(latent_channels, ph, pw, seed)
    padded = np.pad(image, ((0, 0), (0, ph - h), (0, pw - w)), mode="reflect" if ph - h < h and pw - w < w else "edge")
    acc = np.zeros((3, ph, pw), np.float64)
    norm = np.zeros((ph, pw), np.float64)
    spots = [(y, x) for y in ys for x in xs]
    for i in range(0, len(spots), batch):
        chunk = spots[i:i + batch]
        lq = np.stack([padded[:, y:y + tile, x:x + tile] for y, x in chunk]).astype(np.float32)
        ep = np.stack([eps[:, y // ALIGN:(y + tile) // ALIGN, x // ALIGN:(x + tile) // ALIGN] for y, x in chunk])
        for (y, x), out in zip(chunk, run(lq, ep.astype(np.float32))):
            wy = ramp(tile, overlap, y > 0, y + tile < ph)
            wx = ramp(tile, overlap, x > 0, x + tile < pw)
            weight = wy[:, None] * wx[None, :]
            acc[:, y:y + tile, x:x + tile] += out * weight
            norm[y:y + tile, x:x + tile] += weight
    return (acc / norm)[:, :h, :w].astype(np.float32)
