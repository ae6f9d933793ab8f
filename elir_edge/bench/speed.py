"""Speed measured the trtexec way: warm-up by time, then at least N iterations and at least D seconds."""

from __future__ import annotations

import time
from typing import Callable

from elir_edge.bench.stats import latency_summary


def measure(run: Callable[[], object], warmup_s: float = 0.2, iterations: int = 10, duration_s: float = 3.0,
            batch: int = 1) -> dict:
    """Per-run wall-clock latency (host side, inputs already in memory) and throughput = batch / median.
    A `run` that returns a dict of device-measured milliseconds (CUDA events: compute, end to end) gets
    those summarised too, under "device", each with its own throughput."""
    end = time.perf_counter() + warmup_s
    run()
    while time.perf_counter() < end:
        run()
    times, device = [], []
    start = time.perf_counter()
    while len(times) < iterations or time.perf_counter() - start < duration_s:
        t0 = time.perf_counter()
        r = run()
        times.append(time.perf_counter() - t0)
        if isinstance(r, dict):
            device.append(r)
    s = _with_throughput(latency_summary(times), batch)
    s["batch"] = batch
    s["samples_ms"] = [t * 1000 for t in times]
    if device:
        s["device"] = {k.removesuffix("_ms"): _with_throughput(latency_summary([d[k] / 1000 for d in device]), batch)
                       for k in device[0]}
    return s


def _with_throughput(summary: dict, batch: int) -> dict:
    return {**summary, "throughput_img_s": batch / (summary["median_ms"] / 1000)}
