"""Latency summaries and bootstrap confidence intervals (numpy, seeded)."""

from __future__ import annotations

import numpy as np

PERCENTILES = (90, 95, 99)


def nearest_rank(sorted_ms: np.ndarray, p: int) -> float:
    """The p-th percentile as trtexec reports it (samples/common/sampleReporting.cpp, findPercentile): the
    sorted sample with floor((1 - p/100) n) samples above it, a time that was measured, never interpolated
    (integer arithmetic, so 99 % of 100 runs is the 99th, not a float rounding's pick)."""
    n = sorted_ms.size
    return float(sorted_ms[max(n - 1 - (100 - p) * n // 100, 0)])


def latency_summary(seconds: list[float]) -> dict:
    """min / median / mean / p90 / p95 / p99 in milliseconds (nearest-rank percentiles, as trtexec)."""
    a = np.sort(np.asarray(seconds, np.float64) * 1000)
    out = {"n": int(a.size), "min_ms": float(a[0]), "median_ms": float(np.median(a)), "mean_ms": float(a.mean()),
           "max_ms": float(a[-1])}
    out.update({f"p{p}_ms": nearest_rank(a, p) for p in PERCENTILES})
    return out


def worst_fraction_mean(values: np.ndarray, fraction: float = 0.05) -> float:
    """Mean of the lowest `fraction` of values (at least one): the worst images for PSNR/SSIM."""
    v = np.sort(np.asarray(values, np.float64))
    return float(v[:max(1, int(np.ceil(fraction * v.size)))].mean())


STATISTICS = {"mean": np.mean, "median": np.median, "worst_5pct": worst_fraction_mean}


def bootstrap_ci(values, statistic, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple:
    """Percentile bootstrap interval of `statistic` over images."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    stats = np.array([statistic(v[i]) for i in idx])
    lo, hi = np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def describe(values, seed: int = 0) -> dict:
    """mean, median and worst 5 % of per-image values, each with a bootstrap 95 % interval."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)] if np.isfinite(v).any() else v
    return {name: {"value": float(fn(finite)), "ci95": bootstrap_ci(finite, fn, seed=seed)}
            for name, fn in STATISTICS.items()} | {"n": int(v.size)}
