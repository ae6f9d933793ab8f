"""The range each activation of a CPU-form graph spans on the calibration images, for its uint8 grids."""

from __future__ import annotations

import numpy as np
import onnx

from elir_edge.runtime.ort import session_with_outputs

RANGE_PIXELS = 16 * 256 * 256  # calibration pixels run at the graph's size for the ranges (16 images of 256 px,
# 4 of 512): the extremes settle in a few images, and each costs a run of the int8 graph at full size


def range_images(height: int, width: int) -> int:
    return max(1, RANGE_PIXELS // (height * width))


def seen_ranges(model: onnx.ModelProto, feeds: list[dict], tensors: list[str],
                threads: int | None = None) -> dict[str, tuple[float, float]]:
    """(min, max) of each named tensor over the feeds, run by run on ONNX Runtime's CPU (nothing else is kept)."""
    sess = session_with_outputs(model, tensors, threads)
    lo, hi = np.full(len(tensors), np.inf), np.full(len(tensors), -np.inf)
    for f in feeds:
        for i, t in enumerate(sess.run(tensors, f)):
            lo[i], hi[i] = min(lo[i], float(t.min())), max(hi[i], float(t.max()))
    return {t: (float(a), float(b)) for t, a, b in zip(tensors, lo, hi)}
