"""Speed measured the trtexec way: warm-up by time, then at least N iterations and at least D seconds."""

from __future__ import annotations

import time
from typing import Callable

from .stats import latency_summary


def measure(run: Callable[[], object], warmup_s: float = 0.2, iterations: int = 10, duration_s: float = 3.0,
            batch: int = 1) -> dict:
    """Per-run wall-clock latency (host side, inputs already in memory) and throughput = batch / median."""
    end = time.perf_counter() + warmup_s
    run()
    while time.perf_counter() < end:
        run()
    times = []
    start = time.perf_counter()
    while len(times) < iterations or time.perf_counter() - start < duration_s:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    s = latency_summary(times)
    s["throughput_img_s"] = batch / (s["median_ms"] / 1000)
    s["batch"] = batch
    s["samples_ms"] = [t * 1000 for t in times]
    return s
