"""Bench's arithmetic against expectations from outside the code: properties checked by hypothesis, numpy's
own statistics, values worked out by hand, and a second path through the product (rows in another order,
one image on its own vs the set). Written for the mutants mutmut left alive (issue 33,
benchmarks/results/mutation_stats.json, mutation_quality.json)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from PIL import Image

from elir_edge.bench import quality
from elir_edge.bench.stats import PERCENTILES, bootstrap_ci, describe, latency_summary, nearest_rank, \
    worst_fraction_mean

FAST = settings(max_examples=40, deadline=None)
times = st.lists(st.floats(1e-4, 10.0, allow_nan=False), min_size=1, max_size=300, unique=True)


@FAST
@given(times, st.integers(1, 99))
def test_nearest_rank_is_the_sample_with_floor_of_the_rest_above_it(seconds, p):
    """trtexec's definition (sampleReporting.cpp): the measured time with floor((1 - p/100) n) samples above it,
    counted here on the samples themselves."""
    a = np.sort(np.asarray(seconds))
    got = nearest_rank(a, p)
    assert got in a
    assert int(np.sum(a > got)) == min((100 - p) * a.size // 100, a.size - 1)


@FAST
@given(times)
def test_latency_summary_is_numpys_statistics_in_milliseconds(seconds):
    s = latency_summary(seconds)
    ms = np.asarray(seconds) * 1000
    assert s["n"] == len(seconds)
    assert s["min_ms"] == pytest.approx(ms.min()) and s["max_ms"] == pytest.approx(ms.max())
    assert s["median_ms"] == pytest.approx(np.median(ms)) and s["mean_ms"] == pytest.approx(ms.mean())
    for p in PERCENTILES:  # a measured time, with floor((1 - p/100) n) of them above it
        assert s[f"p{p}_ms"] in ms and int(np.sum(ms > s[f"p{p}_ms"])) == min((100 - p) * ms.size // 100, ms.size - 1)
    assert s["min_ms"] <= s["p90_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert set(s) == {"n", "min_ms", "median_ms", "mean_ms", "max_ms", "p90_ms", "p95_ms", "p99_ms"}


def test_latency_percentiles_by_hand_on_ten_runs():
    """10 runs of 1..10 ms: p90 leaves floor(0.1 * 10) = 1 run above it (9 ms), p95 and p99 leave none (10 ms)."""
    s = latency_summary([i / 1000 for i in (7, 1, 9, 3, 10, 2, 8, 4, 6, 5)])
    assert (s["p90_ms"], s["p95_ms"], s["p99_ms"]) == (pytest.approx(9), pytest.approx(10), pytest.approx(10))
    assert (s["min_ms"], s["median_ms"], s["max_ms"]) == (pytest.approx(1), pytest.approx(5.5), pytest.approx(10))
    one = latency_summary([0.004])
    assert one["p90_ms"] == one["p99_ms"] == one["min_ms"] == one["max_ms"] == pytest.approx(4)


def test_worst_fraction_by_hand():
    """The lowest ceil(5 % of n) values, at least one: n = 20 -> 1, n = 21 -> 2, n = 100 -> 5."""
    assert worst_fraction_mean(np.arange(20.0) + 3) == 3.0
    assert worst_fraction_mean(np.arange(21.0)[::-1]) == pytest.approx(0.5)
    assert worst_fraction_mean(np.arange(100.0)) == pytest.approx(2.0)
    assert worst_fraction_mean(np.arange(10.0), fraction=0.3) == pytest.approx(1.0)  # 0, 1, 2
    assert worst_fraction_mean([4.0]) == 4.0


@FAST
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60))
def test_worst_fraction_lies_between_the_minimum_and_the_mean(values):
    v = np.asarray(values)
    w = worst_fraction_mean(v)
    assert v.min() - 1e-9 <= w <= v.mean() + 1e-9 * (1 + abs(v.mean()))


def test_bootstrap_resamples_are_2000_draws_of_n_with_replacement_and_the_interval_their_percentiles():
    """The statistic sees every resample: 2000 of them (the default), each n values of the sample, every
    value drawn at some point; the 95 % interval is numpy's 2.5th and 97.5th percentile of what it returned."""
    v = np.array([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0])
    seen = []

    def mean(x):
        seen.append(np.array(x))
        return float(np.mean(x))

    lo, hi = bootstrap_ci(v, mean, seed=4)
    assert len(seen) == 2000 and all(x.shape == v.shape and np.isin(x, v).all() for x in seen)
    assert set(np.concatenate(seen)) == set(v)  # the first and the last value are drawn too
    stats = [float(np.mean(x)) for x in seen]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(stats, [2.5, 97.5])), rel=1e-12)
    seen.clear()
    lo80, hi80 = bootstrap_ci(v, mean, n_resamples=300, level=0.8, seed=4)
    assert len(seen) == 300
    assert (lo80, hi80) == pytest.approx(tuple(np.percentile([np.mean(x) for x in seen], [10, 90])), rel=1e-12)


def test_bootstrap_minimum_reaches_the_samples_minimum_wherever_it_lies():
    """Resamples draw every index: with 2000 resamples of 6 values the smallest one (first or last) is in
    almost all of them, so the interval of the minimum starts at it."""
    for v in ([0.0, 5, 6, 7, 8, 9], [5.0, 6, 7, 8, 9, 0]):
        assert bootstrap_ci(v, np.min)[0] == 0.0 and bootstrap_ci(v, np.max)[1] == 9.0


def test_bootstrap_seeds_give_their_own_draws():
    v = np.random.default_rng(0).normal(size=30)
    assert bootstrap_ci(v, np.mean, seed=1) != bootstrap_ci(v, np.mean, seed=2)
    assert bootstrap_ci(v, np.mean, seed=1) == bootstrap_ci(v, np.mean, seed=1)


def test_describe_is_its_statistics_on_the_finite_values_with_their_intervals():
    """An identical image's PSNR is inf: the figures are over the finite ones, n counts every image."""
    v = [20.0, 30.5, math.inf, 25.25, 40.125, 33.0, 21.75]
    d = describe(v, seed=5)
    finite = np.array([20.0, 30.5, 25.25, 40.125, 33.0, 21.75])
    assert d["n"] == 7 and set(d) == {"n", "mean", "median", "worst_5pct"}
    assert d["mean"]["value"] == pytest.approx(170.625 / 6) and d["median"]["value"] == pytest.approx(27.875)
    assert d["worst_5pct"]["value"] == 20.0
    assert d["mean"]["ci95"] == bootstrap_ci(finite, np.mean, seed=5)
    assert d["median"]["ci95"] == bootstrap_ci(finite, np.median, seed=5)
    assert d["worst_5pct"]["ci95"] == bootstrap_ci(finite, worst_fraction_mean, seed=5)
    assert describe(v, seed=6)["mean"]["ci95"] != d["mean"]["ci95"]
    assert set(d["mean"]) == {"value", "ci95"}
    with np.errstate(invalid="ignore"):
        every = describe([math.inf, math.inf])  # nothing finite: the values as they are
    assert every["n"] == 2 and every["mean"]["value"] == math.inf


# --- bench/quality.py: the scorer and the driver's aggregate, on stand-in runners whose outputs are known


def _psnr(a, b) -> float:  # by hand, data range 1
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


class _Fake:
    """A runner that computes a known function of lq and eps (eps decides the output, like ELIR's)."""

    def __init__(self, offset: float, gain: float = 0.0):
        self.offset, self.gain, self.calls = offset, gain, 0

    def __call__(self, lq, eps):
        self.calls += 1
        up = np.repeat(np.repeat(eps[:, :3], 8, axis=2), 8, axis=3)
        return np.clip(0.6 * lq + 0.05 * up + self.offset + self.gain * lq ** 2, 0, 1).astype(np.float32)


S = quality.ScoreSettings(task="denoising", height=32, width=32, latent=4, seed=3)


def _photos(tmp_path, n=3):
    rng = np.random.default_rng(8)
    paths = []
    for i in range(n):
        img = rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def test_items_name_each_image_and_its_ground_truth(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert quality.items(["x", "y"], [a, b]) == [{"index": 0, "name": "x", "path": str(a), "gt": None},
                                                  {"index": 1, "name": "y", "path": str(b), "gt": None}]
    assert quality.items(["x", "y"], [a, b], [b, a])[1] == {"index": 1, "name": "y", "path": str(b), "gt": str(a)}


def test_an_items_inputs_are_eval_inputs_and_paired_inputs_image_i(tmp_path):
    """A scorer reading image i itself gives it what the whole-set functions give image i."""
    from elir_edge.common.images import read_rgb
    from elir_edge.model.eval_inputs import eval_inputs, paired_inputs

    paths = _photos(tmp_path)
    imgs = [read_rgb(p) for p in paths]
    whole = eval_inputs([(p.name, im) for p, im in zip(paths, imgs)], S.task, S.height, S.width, S.latent, S.seed)
    pairs = paired_inputs([p.name for p in paths], imgs[::-1], imgs, S.height, S.width, S.latent, S.seed)
    for item in quality.items([p.name for p in paths], paths):
        lq, eps, hq = quality.item_inputs(item, S)
        i = item["index"]
        assert np.array_equal(lq, whole.lq[i]) and np.array_equal(eps, whole.eps[i]) and np.array_equal(hq, whole.hq[i])
    for item in quality.items([p.name for p in paths], paths[::-1], paths):
        lq, eps, hq = quality.item_inputs(item, S)
        i = item["index"]
        assert np.array_equal(lq, pairs.lq[i]) and np.array_equal(eps, pairs.eps[i]) and np.array_equal(hq, pairs.hq[i])


def test_the_first_readable_input_is_the_one_timed(tmp_path):
    paths = _photos(tmp_path, 2)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    todo = quality.items(["bad", "gone", "p1"], [bad, tmp_path / "gone.png", paths[1]])
    assert np.array_equal(quality.first_input(todo, S), quality.item_inputs(todo[2], S)[0])
    assert quality.first_input(todo[:2], S) is None and quality.first_input(None, S) is None


def test_a_failed_row_is_the_item_and_its_reason():
    item = {"index": 4, "name": "n", "path": "/p", "gt": None}
    assert quality.failed_row(item, "why") == ({"index": 4, "name": "n", "path": "/p", "status": "failed",
                                                 "error": "why"}, b"")


def test_a_scored_row_compares_each_output_with_the_right_reference(tmp_path):
    """Worked out from the stand-in runners: the floor is the reference on the field of seed + 10000 + i, each
    artifact against the truth and (unless it is the reference itself) against the reference's output."""
    from elir_edge.common.metrics import ssim
    from elir_edge.model.noise import latent_noise

    paths = _photos(tmp_path, 2)
    ref, art = _Fake(0.0), _Fake(0.03)
    score = quality.ImageScorer([ref, art], ref, S)
    item = quality.items(["a", "b"], paths)[1]
    row, blob = score(item)
    assert (ref.calls, art.calls) == (2, 1)  # the reference once for the outputs (reused as artifact 0), once for the floor
    lq, eps, hq = (x[None] for x in quality.item_inputs(item, S))
    out_ref, out_art = ref(lq, eps), art(lq, eps)
    floor = ref(lq, latent_noise(S.latent, S.height, S.width, S.seed + 10_000 + 1)[None])
    assert blob == b"" and row["status"] == "scored" and row["ms"] >= 0
    assert (row["index"], row["name"], row["path"]) == (1, "b", str(paths[1]))
    assert row["noise_floor_vs_float"]["psnr"] == pytest.approx(_psnr(floor, out_ref))
    assert row["noise_floor_vs_float"]["ssim"] == pytest.approx(ssim(floor, out_ref))
    assert row["degraded_vs_gt"] == {"psnr": pytest.approx(_psnr(lq, hq)), "ssim": pytest.approx(ssim(lq, hq))}
    first, second = row["artifacts"]
    assert set(first) == {"vs_gt"} and first["vs_gt"]["psnr"] == pytest.approx(_psnr(out_ref, hq))
    assert second["vs_gt"]["psnr"] == pytest.approx(_psnr(out_art, hq))
    assert second["vs_float"] == {"psnr": pytest.approx(_psnr(out_art, out_ref)), "ssim": pytest.approx(ssim(out_art, out_ref))}
    gone = {"index": 0, "name": "gone", "path": str(tmp_path / "gone.png"), "gt": None}
    assert score(gone) == quality.failed_row(gone, "not a readable image (FileNotFoundError)")


def test_a_rows_time_is_the_scorers_own_in_milliseconds(tmp_path, monkeypatch):
    clock = iter([10.0, 10.25])
    paths = _photos(tmp_path, 1)
    ref = _Fake(0.0)
    score = quality.ImageScorer([ref], ref, S)
    monkeypatch.setattr(quality.time, "perf_counter", lambda: next(clock))
    row, _ = score(quality.items(["a"], paths)[0])
    assert row["ms"] == pytest.approx(250.0)


def test_a_scored_rows_features_are_truth_reference_then_each_artifact(tmp_path):
    from elir_edge.bench.fid import features

    def net(x):  # a stand-in feature extractor: each image's mean level per channel, twice
        return x.float().mean(dim=(2, 3)).repeat(1, 2)

    paths = _photos(tmp_path, 1)
    ref, art = _Fake(0.0), _Fake(0.1)
    item = quality.items(["a"], paths)[0]
    _, blob = quality.ImageScorer([art, ref], ref, S, net)(item)
    lq, eps, hq = (x[None] for x in quality.item_inputs(item, S))
    want = features(net, np.concatenate([hq, ref(lq, eps), art(lq, eps), ref(lq, eps)]))
    assert np.array_equal(np.frombuffer(blob, np.float32).reshape(4, -1), want)


def _scored(tmp_path, n=4):
    paths = _photos(tmp_path, n)
    ref, art = _Fake(0.0), _Fake(0.04, gain=0.2)  # an error that differs image by image
    score = quality.ImageScorer([art, ref], ref, S)
    return [score(item) for item in quality.items([p.name for p in paths], paths)]


def test_aggregate_is_describe_of_each_rows_figures_whatever_their_order(tmp_path):
    scored = _scored(tmp_path)
    bad = quality.failed_row({"index": 9, "name": "x", "path": "/x", "gt": None}, "not a readable image (OSError)")
    bad2 = quality.failed_row({"index": 7, "name": "y", "path": "/y", "gt": None}, "not a readable image (OSError)")
    rows, blobs = zip(*(scored + [bad, bad2]))
    fid = {"available": False, "reason": "no weights"}
    out = quality.aggregate(list(rows), list(blobs), 2, 11, fid)
    shuffled = [4, 1, 5, 0, 3, 2]
    again = quality.aggregate([rows[k] for k in shuffled], [blobs[k] for k in shuffled], 2, 11, fid)
    assert again == out
    good = [r for r, _ in scored]
    assert out["images"] == 4 and out["failed"] == ["/y", "/x"] and out["seed"] == 11
    assert out["failures"] == {"not a readable image (OSError)": 2}
    assert out["noise_floor_vs_float"]["psnr"] == describe([r["noise_floor_vs_float"]["psnr"] for r in good], 11)
    assert out["degraded_vs_gt"]["ssim"] == describe([r["degraded_vs_gt"]["ssim"] for r in good], 11)
    art, ref = out["artifacts"]
    assert art["vs_gt"]["psnr"] == describe([r["artifacts"][0]["vs_gt"]["psnr"] for r in good], 11)
    assert art["vs_float"]["ssim"] == describe([r["artifacts"][0]["vs_float"]["ssim"] for r in good], 11)
    assert art["vs_float"]["psnr"] == describe([r["artifacts"][0]["vs_float"]["psnr"] for r in good], 11)
    assert art["vs_float"]["psnr"]["mean"]["ci95"][0] < art["vs_float"]["psnr"]["mean"]["ci95"][1]
    assert ref["vs_gt"]["ssim"] == describe([r["artifacts"][1]["vs_gt"]["ssim"] for r in good], 11)
    assert "vs_float" not in ref and art["fid_kid_vs_gt"] == art["fid_kid_vs_float"] == ref["fid_kid_vs_gt"] == fid
    assert set(out) == {"images", "failed", "failures", "seed", "noise_floor_vs_float", "degraded_vs_gt", "artifacts"}


def test_aggregate_feeds_fid_the_truth_and_the_reference_against_each_artifact(monkeypatch):
    """Rows carry [truth, reference, artifact 0, 1, 2] features, image by image: FID/KID vs truth pairs column 0
    with each artifact's column, vs float column 1, images in index order, float32 as the scorer wrote them."""
    rng = np.random.default_rng(2)
    n, dim, arts = 5, 8, 3
    cols = [rng.normal(k, 1 + k, (n, dim)).astype(np.float32) for k in range(arts + 2)]
    monkeypatch.setattr(quality, "fid_kid_of", lambda real, fake, reference, seed: (real.copy(), fake.copy(),
                                                                                    reference, seed))
    row = {"noise_floor_vs_float": {"psnr": 30.0, "ssim": 0.9}, "degraded_vs_gt": {"psnr": 10.0, "ssim": 0.1},
           "status": "scored", "artifacts": [{"vs_gt": {"psnr": 20.0, "ssim": 0.5}, "vs_float": {"psnr": 25.0,
                                                                                                 "ssim": 0.6}}] * arts}
    rows = [{"index": i, "name": str(i), "path": str(i), **row} for i in range(n)]
    blobs = [np.stack([c[i] for c in cols]).tobytes() for i in range(n)]
    order = [3, 0, 4, 2, 1]
    out = quality.aggregate([rows[k] for k in order], [blobs[k] for k in order], arts, 5, {"reference": True})
    for j, a in enumerate(out["artifacts"]):
        for key, first in (("fid_kid_vs_gt", 0), ("fid_kid_vs_float", 1)):
            real, fake, reference, seed = a[key]
            assert real.dtype == fake.dtype == np.float32 and (reference, seed) == (True, 5)
            assert np.array_equal(real, cols[first]) and np.array_equal(fake, cols[j + 2])


def test_aggregate_of_a_single_image():
    row = {"index": 0, "name": "a", "path": "a", "status": "scored", "noise_floor_vs_float": {"psnr": 30.0, "ssim": 0.9},
           "degraded_vs_gt": {"psnr": 10.0, "ssim": 0.1}, "artifacts": [{"vs_gt": {"psnr": 20.0, "ssim": 0.5}}]}
    out = quality.aggregate([row], [b""], 1, 0, {"available": False})
    assert out["images"] == 1 and out["artifacts"][0]["vs_gt"]["psnr"]["mean"]["value"] == 20.0
    assert "vs_float" not in out["artifacts"][0]


def test_the_machine_record_keeps_the_cores_the_bench_ran_on_and_the_machines(monkeypatch):
    """Under a cpuset of 2 of 16 cores the bench ran on 2: the record and the compare-paper line say both."""
    import os

    import onnxruntime  # noqa: F401 - machine() imports them: first imported here, not under the patches below
    import torch  # noqa: F401

    from elir_edge.bench.machine import machine
    from elir_edge.bench.report import _cores

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    record = machine(gpu=False)
    assert (record["cores"], record["machine_cores"]) == (2, 16)
    assert _cores(record) == "2 of 16 cores"
    assert _cores({"cores": 16, "machine_cores": 16}) == _cores({"cores": 16}) == "16 cores"  # older reports too
