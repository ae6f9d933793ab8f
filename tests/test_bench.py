"""Statistics on known data, drift math by hand, runner selection, FID-unavailable path, bench errors."""

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from elir_edge.runtime.compare import per_image
from elir_edge.bench.fid import features, fid_kid_of, inception
from elir_edge.bench.speed import measure
from elir_edge.bench.stage import BenchOptions, open_artifact, run_bench
from elir_edge.bench.stats import (
    bootstrap_ci,
    describe,
    latency_summary,
    worst_fraction_mean,
)
from elir_edge.cli import main
from elir_edge.common.metrics import psnr
from elir_edge.errors import UserError
from elir_edge.model.export_folder import ExportFolder


def test_latency_summary_on_known_data():
    """Percentiles by nearest rank, as trtexec reports them (issue 22): measured runs, never interpolated."""
    s = latency_summary([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert s["min_ms"] == pytest.approx(1) and s["max_ms"] == pytest.approx(100)
    assert s["median_ms"] == pytest.approx(50.5) and s["mean_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90) and s["p95_ms"] == pytest.approx(95)
    assert s["p99_ms"] == pytest.approx(99)


def test_bootstrap_interval_contains_the_truth_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(30, 2, 20), rng.normal(30, 2, 2000)
    lo_s, hi_s = bootstrap_ci(small, np.mean)
    lo_l, hi_l = bootstrap_ci(large, np.mean)
    assert lo_l < 30 < hi_l and lo_s < 30 < hi_s
    assert hi_l - lo_l < (hi_s - lo_s) / 4
    assert bootstrap_ci([5.0] * 10, np.mean) == (5.0, 5.0)
    # reproducible from the seed
    assert bootstrap_ci(small, np.median, seed=3) == bootstrap_ci(small, np.median, seed=3)


def test_worst_five_percent_and_describe():
    v = np.arange(100, dtype=float)
    assert worst_fraction_mean(v) == pytest.approx(2.0)  # mean of 0..4
    assert worst_fraction_mean([7.0, 9.0]) == 7.0
    d = describe(v)
    assert d["n"] == 100 and d["mean"]["value"] == pytest.approx(49.5)
    lo, hi = d["median"]["ci95"]
    assert lo <= 49.5 <= hi


def test_drift_math_against_hand_computed_values():
    ref = np.zeros((2, 3, 8, 8), np.float32)
    out = ref.copy()
    out[0] += 0.1  # mse 0.01 -> 20 dB
    out[1, :, :4] += 0.2  # half the pixels off by 0.2: mse 0.02 -> 16.99 dB
    q = per_image(out, ref)
    assert q["psnr"][0] == pytest.approx(20.0, abs=1e-4)
    assert q["psnr"][1] == pytest.approx(10 * np.log10(1 / 0.02), abs=1e-4)
    assert psnr(ref[0], ref[0]) == float("inf")
    assert per_image(ref, ref)["ssim"] == [pytest.approx(1.0)] * 2


def test_measure_follows_iterations_and_duration(monkeypatch):
    """Latencies known by construction: a fake clock each run moves on by 10 ms (the warm-up run), then 5, 1, 4,
    2, 3, 6, 14 ms. The samples, their median (4 ms) and the throughput (batch 4 / 4 ms = 1000 img/s) worked out
    by hand, not from the code's own figures. Caught: the warm-up counted, throughput from the mean."""
    from types import SimpleNamespace

    import elir_edge.bench.speed as speed

    now, steps = [0.0], iter([0.010, 0.005, 0.001, 0.004, 0.002, 0.003, 0.006, 0.014])
    monkeypatch.setattr(speed, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    s = measure(lambda: now.__setitem__(0, now[0] + next(steps)), warmup_s=0.0, iterations=7, duration_s=0.0,
                batch=4)
    assert s["n"] == 7 and s["batch"] == 4 and s["samples_ms"] == pytest.approx([5, 1, 4, 2, 3, 6, 14])
    assert s["median_ms"] == pytest.approx(4.0) and s["throughput_img_s"] == pytest.approx(1000.0)


def test_runner_selection(demo_folder):
    from elir_edge.runtime.runner import Runner

    opts = BenchOptions(engines=[], threads=1)
    ort, torch_ = open_artifact(demo_folder / "model.onnx", opts), open_artifact(demo_folder / "weights.safetensors", opts)
    assert ort.kind == "ONNX Runtime CPU" and torch_.kind == "PyTorch eager (looped)"
    assert isinstance(ort, Runner) and isinstance(torch_, Runner)
    assert ort.interface == torch_.interface.__class__(ort.interface.meta, 256, 256, 1, 16, True)
    assert torch_.interface.size == ort.interface.size == (256, 256) and torch_.interface.task == "denoising"
    if importlib.util.find_spec("openvino"):
        assert isinstance(open_artifact(demo_folder / "model.onnx", opts, "openvino"), Runner)
    for bad, msg in (("model.trt", "no such artifact"), ("manifest.json", "unknown artifact type")):
        with pytest.raises(UserError, match=msg):
            open_artifact(demo_folder / bad, opts)


def test_pytorch_on_cuda_is_refused_without_cuda_in_one_line(demo_folder, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    code = main(["bench", "--engine", str(demo_folder / "weights.safetensors"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "sees no CUDA GPU" in err[0]
    code = main(["bench", "--engine", str(demo_folder / "model.onnx"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "apply to PyTorch weights" in err[0]


def test_bench_cli_end_to_end(demo_folder, tmp_path, capsys):
    from elir_edge.demo import HELDOUT_DIR

    data = tmp_path / "data"
    data.mkdir()
    for name in ("astronaut_0.png", "chelsea_0.png"):
        (data / name).write_bytes((HELDOUT_DIR / name).read_bytes())
    code = main(["bench", "--engine", str(demo_folder / "model.onnx"), "--engine",
                 str(demo_folder / "weights.safetensors"), "--data", str(data), "--iterations", "2", "--duration",
                 "0", "--warmup", "0", "--threads", "1", "--json", str(tmp_path / "b.json"), "--plot",
                 str(tmp_path / "b.png"), "--compare-paper"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("p99", "noise floor", "FID: unavailable", "not measured here", "compare-paper: best here"):
        assert text in out
    report = json.loads((tmp_path / "b.json").read_text())
    best = max(report["rows"], key=lambda row: row["speed"]["throughput_img_s"])
    line = next(ln for ln in out.splitlines() if ln.startswith("compare-paper"))
    assert f"by {best['label']} ({best['runner']})" in line and "CPU" in line and "not that size" in line
    eager = report["rows"][1]
    assert eager["vs_float"]["psnr"]["mean"]["value"] > 80  # eager PyTorch == exported graph
    assert Image.open(tmp_path / "b.png").width > 100


def test_bench_bad_inputs(demo_folder, tmp_path, capsys):
    import onnx

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no images"):
        run_bench(BenchOptions(engines=[demo_folder / "model.onnx"], data=empty))
    lq, hq = tmp_path / "lq", tmp_path / "hq"
    lq.mkdir(), hq.mkdir()
    Image.new("RGB", (64, 64)).save(lq / "a.png")
    Image.new("RGB", (64, 64)).save(hq / "b.png")
    with pytest.raises(UserError, match="do not pair up"):
        run_bench(BenchOptions(engines=[demo_folder / "model.onnx"], lq=lq, hq=hq))
    foreign = onnx.load(str(demo_folder / "model.onnx"))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(UserError, match="pass --task"):
        run_bench(BenchOptions(engines=[tmp_path / "foreign.onnx"]))
    (tmp_path / "trunc.onnx").write_bytes((demo_folder / "model.onnx").read_bytes()[:5000])
    code = main(["bench", "--engine", str(tmp_path / "trunc.onnx"), "--iterations", "1", "--duration", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot be loaded by ONNX Runtime" in err[0]


def test_roofline_arithmetic(demo_folder):
    from elir_edge.bench.roofline import devices, estimate, roofline

    toy = {"fp32_tflops": 1.0, "fp16_tflops": 2.0, "int8_tops": 4.0, "memory_gb_s": 100.0}
    e = estimate(gmacs=10.0, params=1_000_000, image_hw=(32, 32), device=toy)
    # fp32: compute 2*10e9 / 1e12 = 20 ms; memory (4e6 + 24576) / 1e11 = 0.040 ms -> compute bound, 50 FPS
    assert e["fp32"]["compute_ms"] == pytest.approx(20.0) and e["fp32"]["bound"] == "compute"
    assert e["fp32"]["fps_upper_bound"] == pytest.approx(50.0)
    assert e["int8"]["fps_upper_bound"] == pytest.approx(200.0)
    heavy = estimate(gmacs=0.001, params=1_000_000_000, image_hw=(32, 32), device=toy)
    assert heavy["fp32"]["bound"] == "memory"
    assert heavy["fp32"]["memory_ms"] == pytest.approx((4e9 + 2 * 3 * 32 * 32 * 4) / 1e11 * 1000)
    assert "rtx2080ti" in devices() and all("source" in d for d in devices().values())
    folder = ExportFolder(demo_folder)
    assert set(roofline(folder, ["all"])) == set(devices())
    with pytest.raises(UserError, match="unknown device"):
        roofline(folder, ["h100"])


def test_fid_and_kid_computed_end_to_end(random_inception):
    """FID of a set against itself is 0; a second sample of the same distribution scores well below a
    shifted one, for FID and for KID (unbiased for independent samples, so not against itself)."""
    rng = np.random.default_rng(0)

    def sample(shift=0.0):
        return np.clip(rng.random((16, 3, 64, 64)).astype(np.float32) * 0.5 + 0.25 + shift, 0, 1)

    net, _ = inception(random_inception)
    base, other, moved = (features(net, sample(shift)) for shift in (0.0, 0.0, 0.2))  # each set's once

    def fid_kid(real, fake):
        return fid_kid_of(real, fake, net.reference)

    same = fid_kid(base, base)
    assert same["available"] and not same["reference_weights"] and "not FID/KID as published" in same["note"]
    twin, shifted = fid_kid(base, other), fid_kid(base, moved)
    # against itself FID is 0 but for the matrix square root's rounding, which differs by CPU (-0.011 on an
    # AVX2 EPYC): held to a thousandth of the FID a shifted set scores, not to a constant
    assert abs(same["fid"]) < 1e-3 * shifted["fid"] and same["fid_biased"]  # 16 images < 2048
    assert shifted["fid"] > 2 * twin["fid"] > 0
    assert shifted["kid"] > twin["kid"] + 3 * shifted["kid_std"]


def test_lq_hq_pairs(demo_folder, tmp_path):
    """--lq/--hq: pairs matched by name across formats; the degraded row is PSNR(lq, hq) computed here."""
    from elir_edge.common.degrade import degrade
    from elir_edge.demo import HELDOUT_DIR

    from elir_edge.model.noise import latent_noise
    from elir_edge.runtime.ort import OrtRunner

    lq_dir, hq_dir = tmp_path / "lq", tmp_path / "hq"
    lq_dir.mkdir(), hq_dir.mkdir()
    want, restored = [], []
    float_model = OrtRunner(demo_folder / "model.onnx")
    for i, name in enumerate(("astronaut_1", "chelsea_0")):
        clean = np.asarray(Image.open(HELDOUT_DIR / f"{name}.png").convert("RGB"))
        noisy = degrade("denoising", clean, 40 + i)
        Image.fromarray(clean).save(hq_dir / f"{name}.png")
        Image.fromarray(noisy).save(lq_dir / f"{name}.bmp")
        want.append(psnr(noisy / 255.0, clean / 255.0))
        # the float model on this pair, eps of image i as bench draws it (seed 0 + i), against the clean image
        out = float_model(noisy.transpose(2, 0, 1)[None].astype(np.float32) / 255, latent_noise(16, 256, 256, i)[None])
        restored.append(psnr(out[0], clean.transpose(2, 0, 1) / 255.0))
    r = run_bench(BenchOptions(engines=[demo_folder / "model.onnx"], lq=lq_dir, hq=hq_dir, iterations=1, duration=0,
                               warmup=0))
    q = r["quality"]
    assert q["images"] == 2
    assert q["degraded_vs_gt"]["psnr"]["mean"]["value"] == pytest.approx(np.mean(want), abs=1e-3)
    assert r["rows"][0]["vs_gt"]["psnr"]["mean"]["value"] == pytest.approx(np.mean(restored), abs=1e-3)
    assert np.mean(restored) > np.mean(want) + 3  # and the model does restore
    with pytest.raises(UserError, match="go together"):
        run_bench(BenchOptions(engines=[demo_folder / "model.onnx"], lq=lq_dir))


def test_interleaved_timing_alternates_candidates():
    from elir_edge.bench.speed import measure_interleaved

    order = []
    s = measure_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, warmup_s=0,
                            iterations=3, duration_s=0, batches={"a": 1, "b": 2})
    assert order == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then turns
    assert s["a"]["n"] == s["b"]["n"] == 3 and s["b"]["batch"] == 2


def test_gpu_provider_that_falls_back_to_the_cpu_is_refused(demo_folder, monkeypatch):
    """ONNX Runtime starts a session on the CPU when a listed GPU provider fails to load: such a row would
    be labelled CUDA while timing the CPU. The runner checks the provider the session actually uses."""
    import onnxruntime as ort

    from elir_edge.runtime.ort import OrtRunner

    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession",
                        lambda model, opts, providers, disabled_optimizers=None: real(
                            model, opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled_optimizers))
    with pytest.raises(UserError, match="could not start CUDAExecutionProvider .* fell back to CPUExecutionProvider"):
        OrtRunner(demo_folder / "model.onnx", provider="cuda")


def test_newest_export_is_found(tmp_path):
    import os

    for name, mtime in (("old", 1000), ("new", 3000), ("middle", 2000)):  # created in another order
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
        os.utime(tmp_path / name / "manifest.json", (mtime, mtime))
    (tmp_path / "not_an_export").mkdir()
    assert ExportFolder.newest(tmp_path).path == tmp_path / "new"
    assert ExportFolder(tmp_path / "old").path == tmp_path / "old"
    with pytest.raises(UserError, match="no export under"):
        ExportFolder.newest(tmp_path / "not_an_export")
    with pytest.raises(UserError, match="not an export folder"):
        ExportFolder(tmp_path / "not_an_export")
