"""FID as bench computes it (torchmetrics on the features in the space the two sets span) against torchmetrics
on the 2048-wide features as they are, and both against FID worked out exactly in float64 from a low-rank
identity: the same distance, how close each is, and how long each takes, on one thread.

    python benchmarks/bench_fid.py [--sizes 16 100 500] [--json OUT]

Features are Inception-like (non-negative, correlated: a ReLU of 64 random directions), the fake set shifted;
each size is timed once per way after one warm-up call of each.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def features(n: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(0).normal(size=(64, 2048))
    return (np.maximum((rng.normal(size=(n, 64)) + shift) @ directions, 0) / 10).astype(np.float32)


def full_width_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """torchmetrics' FID on the features as they are (what bench computed before)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from elir_edge.bench.fid import _Given

    fid = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    fid.update(torch.from_numpy(real), real=True)
    fid.update(torch.from_numpy(fake), real=False)
    return float(fid.compute())


def exact_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID worked out in float64 without a 2048-wide matrix: tr sqrt(S1 S2) is the sum of the singular values of
    A B^T / sqrt((n1 - 1)(n2 - 1)), A and B the centered features (the nonzero eigenvalues of S1 S2 are those of
    A^T A B^T B / ..., whose square roots are the singular values of A B^T scaled)."""
    a, b = real.astype(np.float64), fake.astype(np.float64)
    ca, cb = a - a.mean(0), b - b.mean(0)
    root = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    traces = (ca ** 2).sum() / (len(a) - 1) + (cb ** 2).sum() / (len(b) - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * root)


def main() -> None:
    from elir_edge.bench.fid import fid_kid_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 100, 500])
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warm = features(4, 0.0, 9), features(4, 0.3, 8)
    full_width_fid(*warm), fid_kid_of(*warm, reference=False)
    rows = []
    for n in args.sizes:
        real, fake = features(n, 0.0, 1), features(n, 0.3, 2)
        t0 = time.perf_counter()
        full = full_width_fid(real, fake)
        t1 = time.perf_counter()
        ours = fid_kid_of(real, fake, reference=False)["fid"]
        t2 = time.perf_counter()
        exact = exact_fid(real, fake)
        rows.append({"images_a_set": n, "fid_full_width": full, "fid_in_span": ours, "fid_exact": exact,
                     "full_width_error": abs(full - exact) / exact, "in_span_error": abs(ours - exact) / exact,
                     "full_width_s": t1 - t0, "in_span_with_kid_s": t2 - t1})
        print(f"{n:5d} images a set: FID {full:.5f} (2048 wide, {t1 - t0:.2f} s), {ours:.5f} (in the span, with KID: "
              f"{t2 - t1:.2f} s), exact {exact:.5f}; relative errors {rows[-1]['full_width_error']:.1e} and "
              f"{rows[-1]['in_span_error']:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": 1, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
