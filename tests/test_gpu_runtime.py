"""The engine runtime on a stand-in GPU that fails the way CUDA fails (tests/fake_gpu.py), one test per
defect the TensorRT runner had; and the stand-in's own behaviour, so it is known to be able to fail."""

from __future__ import annotations

import json
import shutil

import fake_gpu
import numpy as np
import pytest
from conftest import one_line_error

from elir_edge.cli import main
from elir_edge.common.metrics import psnr
from elir_edge.runtime import cuda
from elir_edge.runtime.engine import EngineError, EngineRunner
from elir_edge.runtime.ort import OrtRunner


@pytest.fixture
def gpu(monkeypatch):
    return fake_gpu.install(monkeypatch, enqueue_ms=5.0, kernel_ms=20.0)


def _engine(folder, tmp_path, io=None, dynamic=False, name="model.rtx.engine", graph="model.onnx"):
    """A stand-in TensorRT-RTX engine of `graph`, with its manifest, next to a copy of the export."""
    dst = tmp_path / "export"
    if not dst.exists():
        shutil.copytree(folder, dst)
    plan = fake_gpu.make_plan((dst / graph).read_bytes(), io, dynamic)
    (dst / name).write_bytes(plan)
    import hashlib

    import tensorrt_rtx

    (dst / f"{name}.json").write_text(json.dumps({
        "builder": "tensorrt-rtx", "builder_version": tensorrt_rtx.__version__, "target_sms": ["75"],
        "target_gpus": ["Turing"], "onnx": graph, "engine_sha256": hashlib.sha256(plan).hexdigest()}))
    return dst / name


def _inputs(n=2, seed=0, size=64):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, size, size), dtype=np.float32), rng.standard_normal((n, 16, size // 8, size // 8)).astype(np.float32)


# the stand-in itself -------------------------------------------------------------------------------

def test_stand_in_refuses_a_wrong_copy_kind_and_host_reads_of_device_memory(gpu):
    fake, _ = gpu
    rt = fake
    host = cuda.check(rt.cudaMallocHost(64))
    dev = cuda.check(rt.cudaMalloc(64))
    stream = cuda.check(rt.cudaStreamCreate())
    err, = rt.cudaMemcpyAsync(dev, host, 64, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)  # kinds swapped
    assert err == rt.cudaError_t.cudaErrorInvalidValue
    err, = rt.cudaMemcpyAsync(host, dev, 64, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)
    assert err == rt.cudaError_t.cudaErrorInvalidValue
    with pytest.raises(PermissionError):
        fake.read_device(int(dev), 64)
    assert int(dev) >= fake_gpu.DEVICE_BASE and int(dev) not in fake.host_mem


def test_stand_in_refuses_sync_and_allocation_inside_capture(gpu):
    rt, _ = gpu
    stream = cuda.check(rt.cudaStreamCreate())
    event = cuda.check(rt.cudaEventCreate())
    cuda.check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
    assert rt.cudaStreamSynchronize(stream)[0] == rt.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert rt.cudaEventSynchronize(event)[0] == rt.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert rt.cudaMalloc(16)[0] == rt.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert rt.cudaStreamEndCapture(stream) == (rt.cudaError_t.cudaErrorStreamCaptureInvalidated, None)  # no graph
    with pytest.raises(cuda.CudaError, match="cudaErrorNotReady"):
        cuda.check(rt.cudaEventElapsedTime(event, event))  # never recorded outside the capture


def test_stand_in_is_asynchronous(gpu, tiny_quantized, tmp_path):
    """Outputs land in the host buffer only at a sync: a runner that skips it reads garbage."""
    rt, trt = gpu
    runner = EngineRunner(trt, _engine(tiny_quantized[0], tmp_path).read_bytes(), tmp_path / "e", "TensorRT-RTX")
    lq, eps = _inputs(1)
    runner._load(lq, eps)
    runner._ready()
    runner._copy_in()
    runner._enqueue()
    runner.buffers[runner.output].to_host(runner.stream.handle)
    stale = runner.buffers[runner.output].host.copy()
    runner.stream.synchronize()
    fresh = runner._result()
    ref = OrtRunner(tiny_quantized[0] / "model.onnx")(lq, eps)
    assert not np.allclose(stale, ref, atol=0.1) and psnr(fresh, ref) > 80


def test_stand_in_reports_fp16_io_with_the_real_dtype(gpu, tiny_quantized, tmp_path):
    rt, trt = gpu
    path = _engine(tiny_quantized[0], tmp_path, io={"lq": "HALF", "eps": "HALF", "hq": "HALF"})
    runner = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")
    assert runner.engine.get_tensor_dtype("lq") == trt.DataType.HALF  # the real tensorrt_rtx enum
    assert runner.buffers["lq"].host.dtype == np.float16 and runner.buffers["hq"].host.dtype == np.float16


# one test per defect of the old runner (numbers of the issue) ---------------------------------------

def test_2_fp16_and_int8_io_run_and_match_within_tolerance(gpu, tiny_quantized, tmp_path):
    """Old code: np.ctypeslib.as_ctypes_type(float16) raised NotImplementedError."""
    _, trt = gpu
    lq, eps = _inputs()
    ref = OrtRunner(tiny_quantized[0] / "model.onnx")(lq, eps)
    path = _engine(tiny_quantized[0], tmp_path, io={"lq": "HALF", "eps": "HALF", "hq": "HALF"})
    out = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")(lq, eps)
    assert out.dtype == np.float32 and 40 < psnr(out, ref) < 120  # fp16 rounding: close, not bit-exact


def test_4_compute_time_excludes_the_hosts_enqueue(gpu, tiny_quantized, tmp_path):
    """enqueue 5 ms on the host, kernels 20 ms on the GPU: compute must read 20, not 25 (the old events
    spanned the enqueue, during which the GPU sat idle)."""
    fake, trt = gpu
    path = _engine(tiny_quantized[0], tmp_path)
    runner = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")
    t = runner.timed(*_inputs(1))
    assert t["compute_ms"] == pytest.approx(20.0, abs=0.5)
    assert t["end_to_end_ms"] >= 25.0  # the caller's view includes the idle enqueue gap
    assert t["enqueue_ms"] >= 0 and t["h2d_ms"] >= 0 and t["d2h_ms"] >= 0


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_6_close_gives_everything_back_and_refuses_later_runs(gpu, tiny_quantized, tmp_path, cuda_graph):
    fake, trt = gpu
    before = fake.live()
    path = _engine(tiny_quantized[0], tmp_path)
    runner = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX", cuda_graph=cuda_graph)
    lq, eps = _inputs(3)
    out = runner(lq, eps)  # three images through a batch-1 engine
    assert psnr(out, OrtRunner(tiny_quantized[0] / "model.onnx")(lq, eps)) > 80
    assert fake.live()["graph_execs"] == (1 if cuda_graph else 0) and fake.live()["graphs"] == 0
    runner.close()
    assert fake.live() == before  # streams, events, graph exec, pinned and device memory all freed
    with pytest.raises(EngineError, match="closed"):
        runner(lq, eps)


def test_5_a_failed_enqueue_inside_capture_leaves_no_capture_and_no_graph(gpu, tiny_quantized, tmp_path):
    """Since issue 22 (its defect 2) a failed capture is not fatal: the runner goes on without a graph, with a
    one-line warning, as trtexec does."""
    fake, trt = gpu
    fake.faults.add("enqueue_fails_in_capture")
    path = _engine(tiny_quantized[0], tmp_path)
    runner = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX", cuda_graph=True)
    lq, eps = _inputs(1)
    with pytest.warns(UserWarning, match="CUDA graph capture failed .*failed to enqueue.*: running without"):
        out = runner(lq, eps)
    status = cuda.check(fake.cudaStreamIsCapturing(runner.stream.handle))
    assert int(status) == 0 and fake.live()["graphs"] == 0  # capture ended, the graph destroyed
    assert runner.kind == "TensorRT-RTX" and runner.stream.graph_exec is None
    assert psnr(out, OrtRunner(tiny_quantized[0] / "model.onnx")(lq, eps)) > 80  # the stream still works


@pytest.mark.parametrize("fault, match", [("no_context", "execution context"),
                                          ("address_refused", "refused the address of input lq")])
def test_7_failed_context_or_address_is_one_line(gpu, tiny_quantized, tmp_path, fault, match):
    fake, trt = gpu
    fake.faults.add(fault)
    path = _engine(tiny_quantized[0], tmp_path)
    with pytest.raises(EngineError, match=match):
        EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")


def test_8_dynamic_engine_takes_the_shape_it_is_given(gpu, tmp_path, small_ckpt):
    """Dynamic dims come back as -1; the runner sets the input shape and sizes buffers from it."""
    _, trt = gpu
    from elir_edge.exporter import ExportOptions, export_checkpoint

    path, _ = small_ckpt
    export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), dynamic=True, fp16=False,
                                          output=tmp_path / "dyn"), quiet=True)
    engine = _engine(tmp_path / "dyn", tmp_path / "x", dynamic=True)
    runner = EngineRunner(trt, engine.read_bytes(), engine, "TensorRT-RTX")
    assert runner.engine.get_tensor_shape("lq")[2] == -1 and runner.dynamic
    for size in (64, 96):
        lq, eps = _inputs(2, size=size)
        out = runner(lq, eps)
        assert out.shape == (2, 3, size, size)
        assert psnr(out, OrtRunner(engine.parent / "model.onnx")(lq, eps)) > 80


def test_10_bindings_newer_than_the_driver_are_named(gpu, monkeypatch):
    """A CUDA 12 driver with cuda-bindings 13 is the wrong bindings, not 'no GPU'."""
    import sys

    fake, _ = gpu
    fake.driver = 12080
    monkeypatch.setattr(sys.modules["cuda.bindings"], "__version__", "13.5.0")
    with pytest.raises(cuda.CudaUnavailable, match=r"supports CUDA 12.*cuda-bindings 13.5.0 need CUDA 13.*"
                                                    r"pip install 'cuda-bindings==12\.\*'"):
        cuda.gpu_info()


def test_11_the_gpu_probe_runs_in_process_once(gpu, monkeypatch):
    import subprocess

    fake, _ = gpu
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a probe subprocess was started"))
    monkeypatch.setattr(cuda, "gpu_info", __import__("functools").lru_cache(maxsize=1)(cuda.gpu_info))
    first = cuda.gpu_info()
    n = len(fake.calls)
    assert cuda.gpu_info() == first == {"name": "NVIDIA GeForce RTX 2080 Ti", "compute_capability": "7.5",
                                        "cuda_driver": "13.0"}
    assert len(fake.calls) == n  # cached: no second probe


def test_no_gpu_is_one_line(monkeypatch):
    fake, _ = fake_gpu.install(monkeypatch, gpu=None)
    with pytest.raises(cuda.CudaUnavailable, match="no NVIDIA GPU"):
        cuda.gpu_info()


# bench and restore through open_runner ------------------------------------------------------------

def test_bench_and_restore_run_rtx_engines_and_close_them(gpu, tiny_quantized, tmp_path, capsys):
    fake, _ = gpu
    before = fake.live()
    engine = _engine(tiny_quantized[0], tmp_path, name="model_int8.rtx.engine", graph="model_int8.onnx")
    folder = engine.parent
    data = tiny_quantized[0].parent / "calib"
    report = tmp_path / "bench.json"
    assert main(["bench", "--engine", str(folder / "model_int8.onnx"), "--engine", str(engine), "--cuda-graph",
                 "--data", str(data), "--iterations", "3", "--duration", "0", "--warmup", "0", "--json",
                 str(report)]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA GeForce RTX 2080 Ti" in out and "GPU medians from CUDA events" in out
    assert "engine load" in out and "JIT" in out and "not in the latency figures" in out
    r = json.loads(report.read_text())
    ort_row, trt_row = r["rows"]
    assert trt_row["runner"] == "TensorRT-RTX + CUDA graph" and trt_row["on_gpu"] and "device" not in ort_row["speed"]
    assert trt_row["speed"]["device"]["compute"]["median_ms"] == pytest.approx(20.0, abs=0.5)
    assert abs(trt_row["vs_float"]["psnr"]["mean"]["value"] - ort_row["vs_float"]["psnr"]["mean"]["value"]) < 1
    assert fake.live() == before  # bench closed the engine
    assert main(["restore", "-q", "--engine", str(engine), str(data), "-o", str(tmp_path / "restored")]) == 0
    assert len(list((tmp_path / "restored").glob("*.png"))) == len(list(data.glob("*.png")))
    assert fake.live() == before  # and so did restore


def test_engine_errors_are_one_line(gpu, tiny_quantized, tmp_path, capsys):
    fake, _ = gpu
    engine = _engine(tiny_quantized[0], tmp_path)
    manifest = json.loads((engine.parent / f"{engine.name}.json").read_text())
    truncated = engine.parent / "truncated.rtx.engine"
    truncated.write_bytes(engine.read_bytes()[:200])
    (engine.parent / "truncated.rtx.engine.json").write_text(json.dumps(manifest))
    assert "not the engine its manifest describes" in one_line_error(capsys, ["bench", "--engine", str(truncated)])
    (engine.parent / f"{engine.name}.json").write_text(json.dumps({**manifest, "target_sms": ["86"],
                                                                   "target_gpus": ["Ampere"]}))
    msg = one_line_error(capsys, ["bench", "--engine", str(engine)])
    assert "built by TensorRT-RTX" in msg and "SM86" in msg and "rebuild with `elir-edge build --sm 75`" in msg
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(engine, alone / "m.rtx.engine")
    (alone / "m.rtx.engine.json").write_text(json.dumps(manifest))
    assert "not beside it" in one_line_error(capsys, ["bench", "--engine", str(alone / "m.rtx.engine")])


def test_an_rtx_engine_on_a_machine_without_gpu_says_where_it_runs(tiny_quantized, tmp_path, capsys, monkeypatch):
    fake_gpu.install(monkeypatch, gpu=None)
    engine = _engine(tiny_quantized[0], tmp_path)
    msg = one_line_error(capsys, ["bench", "--engine", str(engine)])
    assert "built by TensorRT-RTX" in msg and "SM75 (Turing)" in msg and "runs only on such a GPU" in msg
    assert "no NVIDIA GPU" in msg and f"elir-edge bench --engine {engine}" in msg


# issue 22: one test per defect fixed (its numbers), each failing on the code before the fix -------------

def _identity_runner(trt, tmp_path, eps=True, dynamic=True, cuda_graph=False, profile=None):
    """An engine of fake_gpu.identity_graph (hq = lq), so every output is known without a reference run."""
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(eps=eps, dynamic=dynamic), dynamic=dynamic, profile=profile)
    return EngineRunner(trt, plan, tmp_path / "identity.rtx.engine", "TensorRT-RTX", cuda_graph=cuda_graph)


def test_i22_1_a_dynamic_engine_is_fed_at_most_its_profiles_max_batch(gpu, tmp_path):
    """Defect 1: nine images went to a dynamic engine as one batch, past the profile's max batch of 4
    (build's default), and set_input_shape refused it. A size outside the profile is one line naming it."""
    _, trt = gpu
    runner = _identity_runner(trt, tmp_path)
    lq, eps = _inputs(9)
    assert np.array_equal(runner(lq, eps), lq)
    assert runner.shape == (4, 3, 64, 64)  # chunks of the profile's max, the last one padded
    assert np.array_equal(runner(lq[:2], eps[:2]), lq[:2]) and runner.shape == (2, 3, 64, 64)
    with pytest.raises(EngineError, match=r"input lq of shape \(1, 3, 256, 256\) is outside the engine's optimization "
                                          r"profile \(min \(1, 3, 32, 32\), max \(4, 3, 128, 128\)\)"):
        runner(*_inputs(1, size=256))


def test_i22_2_a_new_shape_is_run_once_on_real_inputs_before_its_capture(gpu, tmp_path):
    """Defect 2: after a shape change the graph was captured straight away, so TensorRT's deferred work of the
    first enqueue fell inside the capture (the stand-in refuses it, as the real capture would); and the first
    warm-up ran before any input was copied in."""
    import warnings

    fake, trt = gpu
    runner = _identity_runner(trt, tmp_path, cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to plain enqueues either
        for size in (64, 96, 64):
            lq, eps = _inputs(2, size=size)
            assert np.array_equal(runner(lq, eps), lq)
            assert runner.stream.graph_exec is not None and runner.kind == "TensorRT-RTX + CUDA graph"
    assert fake.uninitialised_reads == 0


def test_i22_5_streams_are_captured_thread_local(gpu, tiny_quantized, tmp_path):
    """Defect 5: Global capture mode forbids unsafe CUDA calls on every other thread while it lasts
    (TensorRT-RTX's compile thread among them); trtexec captures ThreadLocal."""
    fake, trt = gpu
    path = _engine(tiny_quantized[0], tmp_path)
    EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX", cuda_graph=True)(*_inputs(1))
    assert fake.capture_modes == [fake.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal]


@pytest.mark.parametrize("fault", ["address_refused", "malloc_fails"])
def test_i22_7_a_failed_open_gives_back_what_it_made(gpu, tiny_quantized, tmp_path, fault):
    """Defect 7: an error inside EngineRunner.__init__ after the stream and buffers existed left them unowned."""
    fake, trt = gpu
    before = fake.live()
    fake.faults.add(fault)
    path = _engine(tiny_quantized[0], tmp_path)
    with pytest.raises((EngineError, cuda.CudaError), match="refused the address|cudaErrorMemoryAllocation"):
        EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")
    assert fake.live() == before


def test_i22_7_a_buffer_without_device_memory_gives_back_its_pinned_memory(gpu):
    """Defect 7: cuda.Buffer left its pinned host memory behind when cudaMalloc failed."""
    fake, _ = gpu
    before = fake.live()
    fake.faults.add("malloc_fails")
    with pytest.raises(cuda.CudaError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        cuda.Buffer(fake, (2, 3), np.float32)
    assert fake.live() == before


def test_i22_8_a_gpu_tensorrt_rtx_cannot_target_is_pointed_to_the_full_tensorrt(tiny_quantized, tmp_path, capsys,
                                                                                 monkeypatch):
    """Defect 8: on an H200 (SM90) the error said `elir-edge build --sm 90`, which `build` refuses."""
    fake_gpu.install(monkeypatch, gpu=("NVIDIA H200", 9, 0))
    engine = _engine(tiny_quantized[0], tmp_path)
    msg = one_line_error(capsys, ["bench", "--engine", str(engine)])
    assert "this GPU is NVIDIA H200 (SM90): TensorRT-RTX cannot target SM90" in msg
    assert "`elir-edge build --target tensorrt`" in msg and "--sm 90" not in msg


def test_i22_9_a_baked_noise_dynamic_engine_never_asks_for_eps(gpu, tmp_path):
    """Defect 9 (of 1d83821; the typed Interface of 256cd80 already fixed it): binding a dynamic engine asked
    get_tensor_shape("eps") of an engine without eps, which TensorRT answers with no dimensions."""
    _, trt = gpu
    runner = _identity_runner(trt, tmp_path, eps=False)
    for size in (64, 96):
        lq, _ = _inputs(2, size=size)
        assert np.array_equal(runner(lq, None), lq)
    assert not runner.interface.needs_eps and runner.engine.unknown_names == []


# the TensorRT builder's defects of issue 22, on fake_gpu.fake_tensorrt_builder (tests/test_engines.py holds
# the builder's earlier ones)

def _tensorrt_build(monkeypatch, tiny_quantized, tmp_path, trt, **opts):
    import sys

    from elir_edge.engines.build import BuildOptions
    from elir_edge.engines.tensorrt import build_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    graph = tmp_path / "m.onnx"
    shutil.copy(tiny_quantized[0] / "model.onnx", graph)
    return build_tensorrt(graph, BuildOptions(target="tensorrt", output=tmp_path / "m.trt", **opts), quiet=True)[1]


@pytest.mark.parametrize("unreadable", [(b"foreign cache",), (b"foreign cache", b"")])
def test_i22_11_a_timing_cache_tensorrt_cannot_make_is_never_set(tiny_quantized, tmp_path, monkeypatch, capsys,
                                                                 unreadable):
    """Defect 11: create_timing_cache returning None reached set_timing_cache(None, ...), a TypeError. An
    unreadable cache is replaced by a fresh one; where TensorRT makes none at all, the build goes on without."""
    fake_gpu.install(monkeypatch)
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True, unreadable_caches=unreadable)
    (tmp_path / "m.timing_cache").write_bytes(b"foreign cache")
    _tensorrt_build(monkeypatch, tiny_quantized, tmp_path, trt)
    assert trt.seen["cache_set"] == ([] if b"" in unreadable else [b""])
    assert "does not fit this GPU or cannot be read" in capsys.readouterr().err
    written = b"foreign cache" if b"" in unreadable else b"cache for this GPU"
    assert (tmp_path / "m.timing_cache").read_bytes() == written


@pytest.mark.parametrize("card, tf32, precision", [(("NVIDIA A100-SXM4-80GB", 8, 0), True, "fp32 (TF32 allowed)"),
                                                   (("NVIDIA A100-SXM4-80GB", 8, 0), False, "fp32"),
                                                   (("NVIDIA GeForce RTX 2080 Ti", 7, 5), True, "fp32")])
def test_i22_10_fp32_engines_say_whether_they_compute_in_tf32(tiny_quantized, tmp_path, monkeypatch, card, tf32,
                                                              precision):
    """Defect 10: "precision: fp32" was the ONNX dtype, while TensorRT's default TF32 flag makes fp32 layers
    TF32 on Ampere and later; BuildOptions(tf32=False) clears the flag."""
    fake_gpu.install(monkeypatch, gpu=card)
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True)
    m = _tensorrt_build(monkeypatch, tiny_quantized, tmp_path, trt, tf32=tf32)
    assert m["precision"] == precision
    assert trt.seen["cleared_flags"] == (set() if tf32 else {trt.BuilderFlag.TF32})
