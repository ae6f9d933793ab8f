"""The engine runtime on a stand-in GPU that fails the way CUDA fails (tests/fake_gpu.py), one test per
defect the TensorRT runner had; and the stand-in's own behaviour, so it is known to be able to fail."""

from __future__ import annotations

import json
import re
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
    plan = fake_gpu.make_plan((dst / graph).read_bytes(), io, dynamic, verbosity="DETAILED",
                              user_allocation=True)  # as build sets them
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
    # the caller's view: the GPU starts at the enqueue's first launch (5 ms in 4 launches), not after it all
    assert 20.0 + 5.0 / fake.launches <= t["end_to_end_ms"] < 25.0
    assert t["enqueue_ms"] >= 0 and t["h2d_ms"] >= 0 and t["d2h_ms"] >= 0


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_6_close_gives_everything_back_and_refuses_later_runs(gpu, tiny_quantized, tmp_path, cuda_graph):
    """On the full TensorRT, whose CUDA graph the runner captures itself (TensorRT-RTX makes its own)."""
    fake, _ = gpu
    before = fake.live()
    path = _engine(tiny_quantized[0], tmp_path)
    runner = EngineRunner(fake_gpu.full_tensorrt(fake), path.read_bytes(), path, "TensorRT", cuda_graph=cuda_graph)
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
    one-line warning, as trtexec does. On the full TensorRT, where the runner captures."""
    fake, _ = gpu
    fake.faults.add("enqueue_fails_in_capture")
    path = _engine(tiny_quantized[0], tmp_path)
    runner = EngineRunner(fake_gpu.full_tensorrt(fake), path.read_bytes(), path, "TensorRT", cuda_graph=True)
    lq, eps = _inputs(1)
    with pytest.warns(UserWarning, match="CUDA graph capture failed .*failed to enqueue.*: running without"):
        out = runner(lq, eps)
    status = cuda.check(fake.cudaStreamIsCapturing(runner.stream.handle))
    assert int(status) == 0 and fake.live()["graphs"] == 0  # capture ended, the graph destroyed
    assert runner.kind == "TensorRT" and runner.stream.graph_exec is None
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
    import onnx

    nodes = onnx.load(str(folder / "model_int8.onnx")).graph.node
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in nodes if n.op_type in ("Conv", "ConvTranspose")]
    int8 = sum(n.input[0] in dequantized for n in convs)  # the TensorRT form: Q/DQ at conv inputs
    assert int8 > 0 and trt_row["layers"]["convolutions"].get("INT8") == int8
    assert sum(trt_row["layers"]["convolutions"].values()) == len(convs) and "layers" not in ort_row
    assert "model_int8.rtx.engine: layers by precision (TensorRT's engine inspector): " in out
    assert "NO INT8 KERNELS" not in out
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

def _identity_runner(trt, tmp_path, eps=True, dynamic=True, cuda_graph=False, profile=None, user_allocation=True):
    """An engine of fake_gpu.identity_graph (hq = lq), so every output is known without a reference run; built with
    REQUIRE_USER_ALLOCATION unless said, as `elir-edge build` builds."""
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(eps=eps, dynamic=dynamic), dynamic=dynamic, profile=profile,
                              user_allocation=user_allocation)
    kind = "TensorRT-RTX" if trt.is_rtx else "TensorRT"
    return EngineRunner(trt, plan, tmp_path / "identity.rtx.engine", kind, cuda_graph=cuda_graph)


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
    warm-up ran before any input was copied in. On the full TensorRT, whose graphs the runner captures."""
    import warnings

    fake, _ = gpu
    runner = _identity_runner(fake_gpu.full_tensorrt(fake), tmp_path, cuda_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to plain enqueues either
        for size in (64, 96, 64):
            lq, eps = _inputs(2, size=size)
            assert np.array_equal(runner(lq, eps), lq)
            assert runner.stream.graph_exec is not None and runner.kind == "TensorRT + CUDA graph"
    assert fake.uninitialised_reads == 0


def test_i22_5_streams_are_captured_thread_local(gpu, tiny_quantized, tmp_path):
    """Defect 5: Global capture mode forbids unsafe CUDA calls on every other thread while it lasts
    (TensorRT-RTX's compile thread among them); trtexec captures ThreadLocal. On the full TensorRT, where the
    runner captures."""
    fake, _ = gpu
    path = _engine(tiny_quantized[0], tmp_path)
    EngineRunner(fake_gpu.full_tensorrt(fake), path.read_bytes(), path, "TensorRT", cuda_graph=True)(*_inputs(1))
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


def test_engines_are_built_with_detailed_profiling_verbosity(tiny_quantized, tmp_path, monkeypatch):
    """Without DETAILED the engine inspector gives layer names only, so bench could not say which precision
    TensorRT chose; the manifest records it."""
    import tensorrt_rtx

    fake_gpu.install(monkeypatch)
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True)
    manifest = _tensorrt_build(monkeypatch, tiny_quantized, tmp_path, trt)
    assert trt.seen["verbosity"] == tensorrt_rtx.ProfilingVerbosity.DETAILED
    assert manifest["profiling_verbosity"] == "detailed"


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


# issue 22's runtime defects 3, 4, 6, 12, 13 (and its timing item 4), on the stand-in's TensorRT-RTX rules

def test_i22_3_tensorrt_rtx_makes_its_own_cuda_graph(gpu, tmp_path):
    """Defect 3: with --cuda-graph the runner captured TensorRT-RTX's stream itself, which TensorRT-RTX allows
    only for engines built with REQUIRE_USER_ALLOCATION (the stand-in refuses the rest, as is_stream_capturable
    says); NVIDIA's route is IRuntimeConfig.cuda_graph_strategy = WHOLE_GRAPH_CAPTURE."""
    import warnings

    fake, trt = gpu
    runner = _identity_runner(trt, tmp_path, dynamic=False, cuda_graph=True)
    lq, eps = _inputs(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to plain enqueues
        for _ in range(3):
            assert np.array_equal(runner(lq, eps), lq)
    assert runner.context.get_runtime_config().cuda_graph_strategy == trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    assert runner.context.graph_launches == 2 and fake.capture_modes == []  # TensorRT-RTX's graph, not ours
    assert runner.kind == "TensorRT-RTX + CUDA graph"


def test_i22_3_without_the_strategy_only_a_capturable_context_is_captured(gpu, tmp_path, monkeypatch):
    """Defect 3, where the API has no CudaGraphStrategy: the runner captures only where is_stream_capturable()
    is True (an engine built with REQUIRE_USER_ALLOCATION); otherwise one warning and no graph."""
    import warnings

    fake, trt = gpu
    monkeypatch.delattr(trt, "CudaGraphStrategy")
    lq, eps = _inputs(1)
    for user_allocation in (False, True):
        runner = _identity_runner(trt, tmp_path, dynamic=False, cuda_graph=True, user_allocation=user_allocation)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert np.array_equal(runner(lq, eps), lq)
        assert (runner.stream.graph_exec is not None) == user_allocation and fake.live()["graphs"] == 0
        refusal = "CUDA graph capture failed (is_stream_capturable() is False"
        assert [refusal in str(w.message) for w in caught] == ([] if user_allocation else [True])


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_i22_4_a_dynamic_rtx_engine_is_timed_on_specialised_kernels(monkeypatch, tmp_path, cuda_graph):
    """Defect 4: without an IRuntimeConfig TensorRT-RTX specialises LAZY: fallback kernels (3x slower here)
    until a background compile ends (10 s here), so the timed runs, and a CUDA graph captured meanwhile, were
    the fallback's. EAGER compiles each shape in its first enqueue, before anything is timed."""
    fake, trt = fake_gpu.install(monkeypatch, enqueue_ms=5.0, kernel_ms=20.0, jit_ms=10_000.0)
    runner = _identity_runner(trt, tmp_path, cuda_graph=cuda_graph)
    for _ in range(2):
        assert runner.timed(*_inputs(2))["compute_ms"] == pytest.approx(20.0, abs=0.5)
    strategy = runner.context.get_runtime_config().dynamic_shapes_kernel_specialization_strategy
    assert strategy == trt.DynamicShapesKernelSpecializationStrategy.EAGER and runner.context.fallback_kernels == 0


def _timed_summary(monkeypatch, tmp_path, enqueue_ms, kernel_ms):
    from elir_edge.bench.speed import measure

    _, trt = fake_gpu.install(monkeypatch, enqueue_ms=enqueue_ms, kernel_ms=kernel_ms, real_host=True)
    runner = _identity_runner(trt, tmp_path, dynamic=False)
    lq, eps = _inputs(1)
    return measure(lambda: runner.timed(lq, eps), warmup_s=0, iterations=3, duration_s=0)


def test_i22_6_a_host_bound_run_is_said_to_be_one(monkeypatch, tmp_path):
    """Defect 6: "compute (host's enqueue excluded)" is the launch time when the enqueue outlasts the GPU's
    work (20 ms of launches for 5 ms of kernels); trtexec warns when the median enqueue exceeds 0.8x the median
    compute. One line in the JSON row and in the table; none where the GPU is the bound."""
    bound = _timed_summary(monkeypatch, tmp_path, enqueue_ms=20.0, kernel_ms=5.0)
    assert bound["device"]["compute"]["median_ms"] == pytest.approx(20.0, abs=0.5)  # the launches, not 5 ms
    assert bound["device"]["enqueue"]["median_ms"] >= 20.0  # the host's time, spent for real (real_host)
    assert re.match(r"host-bound: median enqueue 2\d\.\d\d ms > 0\.8x median compute 20\.0\d ms, so compute is the "
                    r"host's launch time.*a CUDA graph removes the launches$", bound["host_bound"])
    assert "one inference at a time" in bound["throughput_is"]
    from elir_edge.bench.report import _speed_lines

    report = {"task": "denoising", "image_size": "64x64", "threads": None, "machine": {"cpu": "cpu", "gpu": {}},
              "rows": [{"label": "e/identity", "runner": "TensorRT-RTX", "speed": {**bound, "ratio_vs_first": 1.0}}]}
    text = "\n".join(_speed_lines(report))
    assert f"HOST-BOUND e/identity: {bound['host_bound']}" in text and "one inference at a time" in text
    assert "host_bound" not in _timed_summary(monkeypatch, tmp_path, enqueue_ms=5.0, kernel_ms=20.0)


def test_i22_6_percentiles_are_nearest_rank_as_trtexec():
    """Timing item 4: p90/p95/p99 are measured runs (trtexec's findPercentile), not interpolations between two."""
    from elir_edge.bench.stats import latency_summary

    s = latency_summary([i / 1000 for i in range(10, 0, -1)])  # 1..10 ms, unsorted
    assert (s["p90_ms"], s["p95_ms"], s["p99_ms"]) == pytest.approx((9.0, 10.0, 10.0))
    s = latency_summary([i / 1000 for i in range(1, 101)])
    assert (s["p90_ms"], s["p95_ms"], s["p99_ms"], s["median_ms"]) == pytest.approx((90.0, 95.0, 99.0, 50.5))


def test_i22_12_the_runtime_cache_is_kept_beside_the_engine_and_loaded_next_time(gpu, tmp_path):
    """Defect 12: every process repeated TensorRT-RTX's JIT. The runtime cache is written beside the engine on
    close and loaded on the next open (no compile then); one from another GPU is dropped with one line and
    replaced."""
    fake, trt = gpu
    cache = tmp_path / "identity.rtx.engine.runtime_cache"
    lq, eps = _inputs(2)

    def one_run():
        runner = _identity_runner(trt, tmp_path)
        before = fake.calls.count("JIT compile")
        assert np.array_equal(runner(lq, eps), lq)
        runner.close()
        return fake.calls.count("JIT compile") - before

    assert one_run() == 1 and cache.is_file() and not list(tmp_path.glob(".*.tmp"))
    assert one_run() == 0  # the shape compiled by the first process
    fake.gpu = ("NVIDIA GeForce RTX 2070", 7, 5)
    with pytest.warns(UserWarning, match=r"^runtime cache .*identity.rtx.engine.runtime_cache was made on another "
                                         r"GPU, driver or TensorRT-RTX version: dropped"):
        assert one_run() == 1
    assert one_run() == 0  # the cache written for this GPU


def test_i22_13_the_pytorch_rows_copy_through_pinned_memory(monkeypatch, tmp_path):
    """Defect 13: the PyTorch-CUDA rows copied from pageable numpy memory, the engine rows from pinned buffers.
    On a GPU the runner stages inputs and outputs in page-locked tensors (one per shape, reused) and copies
    them non-blocking; shown here with torch.empty recording what it is asked for (no CUDA on this machine)."""
    import torch

    from elir_edge.runtime.pytorch import Staging, TorchRunner
    from elir_edge.runtime.runner import Interface

    class Doubler(torch.nn.Module):
        def forward(self, lq, eps):
            return lq * 2

    asked, empty = [], torch.empty
    monkeypatch.setattr(torch, "empty", lambda shape, **kw: asked.append((shape, kw.pop("pin_memory"))) or
                        empty(shape, **kw))
    runner = TorchRunner(Doubler(), tmp_path / "weights.safetensors", Interface({}, 64, 64, 1, 16, True))
    assert runner.staging.pin == runner.on_gpu is False  # pinned exactly where the copies reach a GPU
    runner.staging = Staging(torch, pin=True)
    for seed in (0, 1):
        lq, eps = _inputs(1, seed=seed)
        assert np.array_equal(runner(lq, eps), lq * 2)
    assert asked == [((1, 3, 64, 64), True), ((1, 16, 8, 8), True), ((1, 3, 64, 64), True)]  # lq, eps, out: once


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (the test above "
                    "covers the staging on the CPU)")
def test_i22_13_on_a_gpu_the_staging_tensors_are_page_locked(tmp_path):
    import torch

    from elir_edge.runtime.pytorch import TorchRunner
    from elir_edge.runtime.runner import Interface

    class Doubler(torch.nn.Module):
        def forward(self, lq, eps):
            return lq * 2

    runner = TorchRunner(Doubler(), tmp_path / "w.safetensors", Interface({}, 64, 64, 1, 16, True), device="cuda")
    lq, eps = _inputs(1)
    assert np.array_equal(runner.timed(lq, eps) and runner(lq, eps), lq * 2)
    assert all(t.is_pinned() for t in runner.staging.tensors.values()) and len(runner.staging.tensors) == 3


# issue 32: one test per defect fixed (its numbers), each failing on c84a6ef ------------------------------

def _rtx_build(monkeypatch, tmp_path, trt, target="rtx", fp16_flag=False, **opts):
    """build_rtx (or build_tensorrt) on the stand-in builder, of fake_gpu.identity_graph (static, fp32): no
    quantized fixture."""
    import sys

    from elir_edge.engines.build import BuildOptions
    from elir_edge.engines.rtx import build_rtx
    from elir_edge.engines.tensorrt import build_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt_rtx" if target == "rtx" else "tensorrt", trt)
    graph = tmp_path / "m.onnx"
    graph.write_bytes(fake_gpu.identity_graph(dynamic=False))
    options = BuildOptions(target=target, output=tmp_path / "m.engine", **opts)
    if target == "rtx":
        return build_rtx(graph, options, quiet=True)[1]
    return build_tensorrt(graph, options, quiet=True, fp16_flag=fp16_flag)[1]


def test_i32_7_a_compute_capability_tensorrt_rtx_refuses_is_an_error(tmp_path, monkeypatch):
    """Defect 7: set_compute_capability's False was dropped, so the plan was built for fewer GPUs than asked."""
    from elir_edge.engines.build import BuildError

    trt = fake_gpu.fake_tensorrt_builder("1.7.1", False, refused_sms=("86",))
    with pytest.raises(BuildError, match=r"^--sm 86: TensorRT-RTX 1\.7\.1 refused compute capability SM86: build"):
        _rtx_build(monkeypatch, tmp_path, trt, sms=["75", "86"])
    assert _rtx_build(monkeypatch, tmp_path, trt, sms=["75"])["target_sms"] == ["75"]
    assert trt.seen["sms"] == {0: "SM75"}


def test_i32_9_pytorch_timed_captures_a_graph_for_each_shape(monkeypatch, tmp_path):
    """Defect 9: timed() captured only when no graph existed, so a second shape replayed the first shape's graph
    (its static tensors). Shown on the CPU with stand-ins for the CUDA calls timed() makes: a capture records its
    shape and replays the model on its static tensors."""
    import types

    import torch

    from elir_edge.runtime.pytorch import TorchRunner
    from elir_edge.runtime.runner import Interface

    class Doubler(torch.nn.Module):
        def forward(self, lq, eps):
            return lq * 2

    runner = TorchRunner(Doubler(), tmp_path / "w.safetensors", Interface({}, None, None, None, 16, True))
    captured = []

    def capture(lq, eps):
        captured.append(tuple(lq.shape))
        runner.static = (lq.clone(), eps.clone(), runner.model(lq, eps))
        runner.graph = types.SimpleNamespace(replay=lambda: runner.static[2].copy_(runner.model(*runner.static[:2])))

    event = types.SimpleNamespace(record=lambda: None, elapsed_time=lambda other: 0.0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    runner.on_gpu, runner.cuda_graph, runner.events, runner._capture = True, True, [event] * 6, capture
    for size in (64, 96):
        lq, eps = _inputs(1, size=size)
        assert runner.timed(lq, eps)["compute_ms"] == 0.0
        assert np.array_equal(runner(lq, eps), lq * 2)
    assert captured == [(1, 3, 64, 64), (1, 3, 96, 96)]


@pytest.mark.parametrize("failure", ["serialize returns None", "serialize raises"])
def test_i32_1_close_frees_everything_when_the_runtime_cache_cannot_be_saved(gpu, tmp_path, failure):
    """Defect 1: close() saved the runtime cache before freeing, and bytes(None) raised TypeError there: buffers,
    stream, events and graph leaked and `closed` stayed False. NVIDIA's apiUsage sample treats a None from
    IRuntimeCache::serialize as possible; now it costs one warning, and any other failure still frees first."""
    fake, trt = gpu
    before = fake.live()
    runner = _identity_runner(trt, tmp_path, cuda_graph=True)
    assert np.array_equal(runner(*_inputs(1))[0], _inputs(1)[0][0])
    if failure == "serialize returns None":
        fake.faults.add("cache_serialize_fails")
        with pytest.warns(UserWarning, match=r"runtime cache .* not written \(TensorRT-RTX could not serialize it\)"):
            runner.close()
    else:
        runner.setup.cache.serialize = lambda: (_ for _ in ()).throw(RuntimeError("std::bad_alloc"))
        with pytest.raises(RuntimeError, match="bad_alloc"):
            runner.close()
    assert fake.live() == before and runner.closed and not (tmp_path / "identity.rtx.engine.runtime_cache").exists()


@pytest.mark.parametrize("sms, tf32, precision", [(["75", "86"], True, "fp32 (TF32 allowed)"), (["75"], True, "fp32"),
                                                  (["86"], False, "fp32")])
def test_i32_5_tensorrt_rtx_fp32_engines_say_tf32_too(tmp_path, monkeypatch, sms, tf32, precision):
    """Defect 5: TensorRT-RTX keeps BuilderFlag.TF32 on by default too ("Enabled by default"), so an fp32 plan with
    an SM80+ target computes in TF32 there; it was labelled plain "fp32". The support notes read the precision
    without the label (an fp32 build for SM86 is listed)."""
    trt = fake_gpu.fake_tensorrt_builder("1.7.1", False)
    m = _rtx_build(monkeypatch, tmp_path, trt, sms=sms, tf32=tf32)
    assert m["precision"] == precision and m["support"][0].startswith("listed in NVIDIA's matrix")
    assert trt.seen["cleared_flags"] == (set() if tf32 else {trt.BuilderFlag.TF32})


def test_i32_5_an_fp16_flag_build_is_not_labelled_fp32(tmp_path, monkeypatch):
    """Defect 5: a TensorRT build of an fp32 graph with the FP16 flag was labelled "fp32 (TF32 allowed)"."""
    fake_gpu.install(monkeypatch, gpu=("NVIDIA A100-SXM4-80GB", 8, 0))
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True)
    assert _rtx_build(monkeypatch, tmp_path, trt, target="tensorrt", fp16_flag=True)["precision"] == "fp16 (FP16 flag)"
    assert _rtx_build(monkeypatch, tmp_path, trt, target="tensorrt")["precision"] == "fp32 (TF32 allowed)"


def test_i32_6_a_cuda_graph_tensorrt_rtx_cannot_make_is_not_in_the_label(gpu, tmp_path):
    """Defect 6: "+ CUDA graph" was the request, never confirmed. Now the row says it only where TensorRT-RTX took
    WHOLE_GRAPH_CAPTURE (read back: the C++ setter's bool is lost in Python) and the context is capturable (an
    engine built with REQUIRE_USER_ALLOCATION, which "ensures that inference will support graph capture")."""
    fake, trt = gpu
    lq, eps = _inputs(1)
    for user_allocation, fault, why in [(False, None, r"is_stream_capturable\(\) is False"),
                                        (True, "graph_strategy_refused", "did not take cuda_graph_strategy")]:
        fake.faults = {fault} - {None}
        with pytest.warns(UserWarning, match=f"{why}.*: running without a CUDA graph$"):
            runner = _identity_runner(trt, tmp_path, dynamic=False, cuda_graph=True, user_allocation=user_allocation)
        for _ in range(3):
            assert np.array_equal(runner(lq, eps), lq)
        assert runner.kind == "TensorRT-RTX" and runner.context.graph_launches == 0
        runner.close()


def test_i32_6_build_sets_require_user_allocation(tmp_path, monkeypatch):
    """Defect 6: `elir-edge build` never set REQUIRE_USER_ALLOCATION, without which TensorRT-RTX may not capture."""
    trt = fake_gpu.fake_tensorrt_builder("1.7.1", False)
    m = _rtx_build(monkeypatch, tmp_path, trt)
    assert trt.BuilderFlag.REQUIRE_USER_ALLOCATION in trt.seen["builder_flags"] and m["require_user_allocation"]


@pytest.mark.parametrize("plan, reasons", [
    (dict(min_driver=13020), r"\(OLD_CUDA_DRIVER\): update the NVIDIA driver$"),
    (dict(device_mb=20_000), r"\(INSUFFICIENT_GPU_MEMORY\): free GPU memory"),
    (dict(min_driver=13020, device_mb=20_000), r"\(OLD_CUDA_DRIVER, INSUFFICIENT_GPU_MEMORY\): update the NVIDIA "
                                               r"driver; free GPU memory")])
def test_i32_3_tensorrt_rtx_says_why_an_engine_cannot_run_here(gpu, tmp_path, plan, reasons):
    """Defect 3: every None from deserialization read "damaged, truncated, or built by another version". The runner
    asks get_engine_validity first, as NVIDIA's apiUsage sample does, and names the diagnostics bits."""
    fake, trt = gpu
    before = fake.live()
    blob = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), **plan)
    with pytest.raises(EngineError, match=r"^\S+identity.rtx.engine: TensorRT-RTX says this engine cannot run here "
                                          + reasons):
        EngineRunner(trt, blob, tmp_path / "identity.rtx.engine", "TensorRT-RTX")
    assert fake.live() == before


def test_i32_3_a_suboptimal_engine_runs_and_its_bench_row_is_flagged(gpu, tmp_path):
    """Defect 3: a SUBOPTIMAL engine (TensorRT-RTX: it runs, recompilation recommended) was benched unmarked."""
    from elir_edge.bench.options import BenchOptions
    from elir_edge.bench.stage import _speed_rows

    _, trt = gpu

    def row(suboptimal: bool) -> dict:
        path = tmp_path / f"{suboptimal}.rtx.engine"
        path.write_bytes(fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), suboptimal=suboptimal))
        runner = EngineRunner(trt, path.read_bytes(), path, "TensorRT-RTX")
        lq, eps = _inputs(1)
        assert np.array_equal(runner(lq, eps), lq)
        return _speed_rows(BenchOptions([], iterations=1, duration=0, warmup=0), [runner], None, 64, 64, 16)[0]

    assert row(True)["flag"].startswith("TensorRT-RTX rates this engine SUBOPTIMAL on this GPU")
    assert "flag" not in row(False)


def test_i32_4_a_tensorrt_engine_of_another_gpu_model_is_refused(monkeypatch, tmp_path):
    """Defect 4: engines were matched by compute capability alone, so one built on an RTX 3090 ran on an A10 (both
    8.6), which TensorRT calls unsupported ("likely to affect performance or even cause errors or deadlock")."""
    import sys

    from elir_edge.runtime.tensorrt import open_tensorrt

    fake, _ = fake_gpu.install(monkeypatch, gpu=("NVIDIA A10", 8, 6))
    monkeypatch.setitem(sys.modules, "tensorrt", fake_gpu.full_tensorrt(fake))
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False))
    built = {"tensorrt": "10.8.0", "gpu_compute_capability": "8.6", "gpu_name": "NVIDIA GeForce RTX 3090"}
    with pytest.raises(EngineError, match=r"m.trt was built on NVIDIA GeForce RTX 3090, this machine has NVIDIA A10 "
                                          r"\(both 8.6\): TensorRT does not support .*rebuild it here"):
        open_tensorrt(tmp_path / "m.trt", plan, built)
    open_tensorrt(tmp_path / "m.trt", plan, {**built, "gpu_name": "NVIDIA A10"}).close()


def test_i32_4_tensorrts_warnings_reach_the_user(gpu, tmp_path, capfd):
    """Defect 4: the runtime's logger was at ERROR, hiding TensorRT's warning of a plan from another GPU model."""
    fake, _ = gpu
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), built_on="NVIDIA GeForce RTX 3090")
    EngineRunner(fake_gpu.full_tensorrt(fake), plan, tmp_path / "m.trt", "TensorRT").close()
    assert fake_gpu.ACROSS_DEVICES in capfd.readouterr().err


def test_i32_8_the_cuda_context_is_made_first_and_timed_apart_from_the_engine_load(monkeypatch, tmp_path):
    """Defect 8: the first engine's load_ms held the process's CUDA context creation (made by TensorRT's first CUDA
    call), reported as TensorRT-RTX's JIT. The runner makes the context first (cudaFree(0)) and times it apart;
    a second engine finds it made. The stand-in spends its 400 ms of context creation for real (real_host)."""
    fake, trt = fake_gpu.install(monkeypatch, context_ms=400.0, real_host=True)
    first = _identity_runner(trt, tmp_path, dynamic=False)
    assert first.load_ms < 400 <= first.context_ms
    assert fake.calls.index("CUDA context creation") < fake.calls.index("cudaFree(0)")
    second = _identity_runner(trt, tmp_path, dynamic=False)
    assert fake.calls.count("CUDA context creation") == 1 and second.context_ms < 400


def test_i32_2_gpu_rows_are_timed_back_to_back_not_after_cpu_runs(monkeypatch, tmp_path):
    """Defect 2: each GPU sample followed a CPU row's run, so the GPU had dropped to idle clocks and every sample
    timed the boost. The stand-in's clocks: after 80 ms of real time without work, the next 50 ms of kernels run
    at half speed. A CPU row of 150 ms beside an engine of 20 ms kernels: the engine's compute reads 20 ms."""
    import time

    from elir_edge.bench.speed import measure_interleaved

    _, trt = fake_gpu.install(monkeypatch, enqueue_ms=5.0, kernel_ms=20.0, idle_s=0.08, cool_x=2.0, ramp_ms=50.0)
    runner = _identity_runner(trt, tmp_path, dynamic=False)
    lq, eps = _inputs(1)
    order = []
    runs = {"engine": lambda: order.append("gpu") or runner.timed(lq, eps),
            "onnx": lambda: order.append("cpu") or time.sleep(0.15)}
    speeds = measure_interleaved(runs, warmup_s=0, iterations=3, duration_s=0, on_gpu={"engine"})
    assert order == ["gpu"] * 4 + ["cpu"] * 4  # warm-up and samples of the GPU row, then the CPU row's
    assert speeds["engine"]["device"]["compute"]["median_ms"] == pytest.approx(20.0, abs=0.5)
    assert "device" not in speeds["onnx"]
