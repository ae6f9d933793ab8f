"""Speed measured the trtexec way: warm-up by time, then at least N iterations and at least D seconds per
artifact. Artifacts compared in one run take turns, run by run, so machine drift hits them alike; but the GPU
rows take their turns among themselves, warmed up and timed back to back before the CPU rows: a GPU idle
through a CPU run drops to idle clocks and boosts again only under load (NVIDIA's performance guide), so a
GPU sample after a CPU run would time the boost."""

from __future__ import annotations

import time
from typing import Callable, Collection

from elir_edge.bench.stats import latency_summary


def measure_interleaved(runs: dict[str, Callable[[], object]], warmup_s: float = 0.2, iterations: int = 10,
                        duration_s: float = 3.0, batches: dict[str, int] | None = None,
                        on_gpu: Collection[str] = ()) -> dict[str, dict]:
    """Per-run wall-clock latency of each candidate (host side, inputs already in memory) and throughput =
    batch / median. A `run` that returns a dict of device-measured milliseconds (CUDA events) gets those
    summarised too, under "device", each with its own throughput; its "wall_ms", when given, is the host
    latency (an engine's timed run does extra work after it, for the compute figure). The runs named in
    `on_gpu` are warmed up and timed first, in turns among themselves only."""
    times = {k: [] for k in runs}
    device = {k: [] for k in runs}
    gpu = {k: run for k, run in runs.items() if k in on_gpu}
    for group in (gpu, {k: run for k, run in runs.items() if k not in on_gpu}):
        _warm_up(group, warmup_s)
        _take_turns(group, iterations, duration_s, times, device)
    return {k: _summary(times[k], device[k], (batches or {}).get(k, 1)) for k in runs}


def _warm_up(runs: dict[str, Callable[[], object]], warmup_s: float) -> None:
    for run in runs.values():
        end = time.perf_counter() + warmup_s
        run()
        while time.perf_counter() < end:
            run()


def _take_turns(runs: dict[str, Callable[[], object]], iterations: int, duration_s: float, times: dict,
                device: dict) -> None:
    """Each run in turn, until every one has at least `iterations` samples and `duration_s` seconds."""
    spent = dict.fromkeys(runs, 0.0)

    def wanting(k: str) -> bool:
        return len(times[k]) < max(1, iterations) or spent[k] < duration_s

    while any(wanting(k) for k in runs):
        for k, run in runs.items():
            if not wanting(k):
                continue
            t0 = time.perf_counter()
            r = run()
            dt = time.perf_counter() - t0
            spent[k] += dt
            if isinstance(r, dict):
                r = dict(r)
                dt = r.pop("wall_ms", dt * 1000) / 1000
                device[k].append(r)
            times[k].append(dt)


def measure(run: Callable[[], object], warmup_s: float = 0.2, iterations: int = 10, duration_s: float = 3.0,
            batch: int = 1) -> dict:
    """One candidate alone (see measure_interleaved)."""
    return measure_interleaved({"run": run}, warmup_s, iterations, duration_s, {"run": batch})["run"]


THROUGHPUT_IS = "one inference at a time: batch / median latency (no second inference in flight)"
ENQUEUE_BOUND = 0.8  # trtexec's kENQUEUE_BOUND_REPORTING_THRESHOLD (samples/common/sampleReporting.cpp, printEpilog)


def _summary(times: list[float], device: list[dict], batch: int) -> dict:
    s = _with_throughput(latency_summary(times), batch)
    s["batch"] = batch
    s["throughput_is"] = THROUGHPUT_IS
    s["samples_ms"] = [t * 1000 for t in times]
    if device:
        s["device"] = {k.removesuffix("_ms"): _with_throughput(latency_summary([d[k] / 1000 for d in device]), batch)
                       for k in device[0]}
        warning = host_bound(s["device"])
        if warning:
            s["host_bound"] = warning
    return s


def host_bound(device: dict) -> str | None:
    """trtexec's warning, by its rule: a median enqueue above 0.8x the median compute means the GPU waits for
    the host's launches, so the compute figure is then the launch time, not the GPU's work."""
    if "enqueue" not in device or "compute" not in device:
        return None
    enqueue, compute = device["enqueue"]["median_ms"], device["compute"]["median_ms"]
    if enqueue <= ENQUEUE_BOUND * compute:
        return None
    return (f"host-bound: median enqueue {enqueue:.2f} ms > {ENQUEUE_BOUND}x median compute {compute:.2f} ms, so "
            "compute is the host's launch time, not the GPU's work (trtexec's rule); a CUDA graph removes the launches")


def _with_throughput(summary: dict, batch: int) -> dict:
    return {**summary, "throughput_img_s": batch / (summary["median_ms"] / 1000)}
