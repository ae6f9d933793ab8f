"""Feeding static-batch graphs: chunks of exactly the graph's batch, the last one padded."""

from __future__ import annotations

from typing import Callable

import numpy as np


def in_batches(run_batch: Callable[[np.ndarray, np.ndarray | None], np.ndarray], batch: int, lq: np.ndarray,
               eps: np.ndarray | None) -> np.ndarray:
    """Run `run_batch` on chunks of exactly `batch` items, padding the last one, and trim the padding."""
    outs = []
    for i in range(0, len(lq), batch):
        n = len(lq[i:i + batch])
        outs.append(run_batch(_pad(lq[i:i + batch], batch),
                              None if eps is None else _pad(eps[i:i + batch], batch))[:n])
    return np.concatenate(outs)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last item so a short final chunk fits a static batch."""
    return x if len(x) == n else np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])
