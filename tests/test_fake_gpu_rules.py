"""The stand-in GPU's rules (tests/fake_gpu.py), one test each, showing the refusal the real CUDA or TensorRT
call gives: a stand-in that cannot fail hides the runner's defects (issue 22 lists those it hid)."""

from __future__ import annotations

import threading

import fake_gpu
import numpy as np
import pytest
import tensorrt_rtx

from elir_edge.engines.build import parse
from elir_edge.runtime import cuda
from elir_edge.runtime.engine import EngineRunner

MODE = fake_gpu.MODE


@pytest.fixture
def gpu(monkeypatch):
    return fake_gpu.install(monkeypatch)


def _context(trt, eps=True, dynamic=True, io=None, profile=None):
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(eps=eps, dynamic=dynamic), io, dynamic, profile)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    return engine, engine.create_execution_context()


def _bind(fake, engine, context):
    """Device memory for each tensor at the context's shapes; returns a stream."""
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        size = int(np.prod(context.get_tensor_shape(name))) * 4
        assert context.set_tensor_address(name, cuda.check(fake.cudaMalloc(size)))
    return cuda.check(fake.cudaStreamCreate())


def test_set_input_shape_refuses_shapes_outside_the_profile(gpu):
    _, trt = gpu
    engine, context = _context(trt, profile=((1, 32, 32), (1, 64, 64), (4, 128, 128)))
    assert [tuple(d) for d in engine.get_tensor_profile_shape("lq", 0)] == [(1, 3, 32, 32), (1, 3, 64, 64),
                                                                           (4, 3, 128, 128)]
    assert engine.get_tensor_profile_shape("eps", 0)[2] == (4, 16, 16, 16)  # latent resolution
    assert context.set_input_shape("lq", (4, 3, 128, 96))
    for shape in [(5, 3, 64, 64), (1, 3, 256, 64), (1, 3, 16, 64), (1, 3, 64), (1, 4, 64, 64)]:
        assert not context.set_input_shape("lq", shape), shape
    assert not context.set_input_shape("hq", (1, 3, 64, 64))  # an output
    static, context = _context(trt, dynamic=False)
    assert context.set_input_shape("lq", (1, 3, 64, 64)) and not context.set_input_shape("lq", (2, 3, 64, 64))


def test_the_default_profile_is_builds(gpu):
    """Without one, a dynamic plan gets `elir-edge build`'s default: batch 1..4, 32 px .. twice the export."""
    _, trt = gpu
    engine, _ = _context(trt)
    assert engine.get_tensor_profile_shape("lq", 0) == [(1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 128, 128)]


def test_execute_refuses_a_missing_address_or_input_shape(gpu):
    fake, trt = gpu
    engine, context = _context(trt)
    stream = cuda.check(fake.cudaStreamCreate())
    assert not context.execute_async_v3(int(stream))  # no shapes, no addresses
    assert context.set_input_shape("lq", (1, 3, 64, 64))
    for name, shape in [("lq", (1, 3, 64, 64)), ("hq", (1, 3, 64, 64))]:
        context.set_tensor_address(name, cuda.check(fake.cudaMalloc(int(np.prod(shape)) * 4)))
    assert not context.execute_async_v3(int(stream))  # eps: neither its shape nor its address
    assert context.set_input_shape("eps", (1, 16, 8, 8))
    assert not context.execute_async_v3(int(stream))  # eps has a shape, still no address
    context.set_tensor_address("eps", cuda.check(fake.cudaMalloc(16 * 64 * 4)))
    assert context.execute_async_v3(int(stream))


def test_the_first_enqueue_of_a_shape_cannot_be_captured(gpu):
    """TensorRT does deferred work in the first enqueue after a shape change: inside a capture it fails and
    the capture is invalidated; after one plain enqueue the same capture succeeds (the full TensorRT: for
    TensorRT-RTX see the REQUIRE_USER_ALLOCATION rule)."""
    fake, _ = gpu
    engine, context = _context(fake_gpu.full_tensorrt(fake), dynamic=False)
    stream = _bind(fake, engine, context)
    thread_local = MODE.cudaStreamCaptureModeThreadLocal
    cuda.check(fake.cudaStreamBeginCapture(stream, thread_local))
    assert not context.execute_async_v3(int(stream))
    assert fake.cudaStreamEndCapture(stream) == (fake.cudaError_t.cudaErrorStreamCaptureInvalidated, None)
    assert context.execute_async_v3(int(stream))
    cuda.check(fake.cudaStreamSynchronize(stream))
    cuda.check(fake.cudaStreamBeginCapture(stream, thread_local))
    assert context.execute_async_v3(int(stream))
    assert cuda.check(fake.cudaStreamEndCapture(stream)) is not None


def _malloc_on_another_thread(fake) -> object:
    result = []
    t = threading.Thread(target=lambda: result.append(fake.cudaMalloc(16)[0]))
    t.start()
    t.join()
    return result[0]


@pytest.mark.parametrize("mode, other_thread_refused, own_thread_refused", [
    (MODE.cudaStreamCaptureModeGlobal, True, True), (MODE.cudaStreamCaptureModeThreadLocal, False, True),
    (MODE.cudaStreamCaptureModeRelaxed, False, False)])
def test_capture_modes_forbid_unsafe_calls_where_cuda_does(gpu, mode, other_thread_refused, own_thread_refused):
    """Global forbids unsafe calls (here cudaMalloc) on every thread, ThreadLocal on the capturing one,
    Relaxed nowhere; the mode of every capture is recorded."""
    fake, _ = gpu
    stream = cuda.check(fake.cudaStreamCreate())
    cuda.check(fake.cudaStreamBeginCapture(stream, mode))
    unsupported = fake.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert (_malloc_on_another_thread(fake) == unsupported) == other_thread_refused
    assert (fake.cudaMalloc(16)[0] == unsupported) == own_thread_refused
    err, graph = fake.cudaStreamEndCapture(stream)
    assert (graph is None) == (other_thread_refused or own_thread_refused)  # a refusal invalidates the capture
    assert fake.capture_modes == [mode]


def test_a_kernel_reading_memory_nothing_wrote_is_counted(gpu):
    fake, trt = gpu
    engine, context = _context(trt, dynamic=False)
    stream = _bind(fake, engine, context)
    assert context.execute_async_v3(int(stream))
    cuda.check(fake.cudaStreamSynchronize(stream))
    assert fake.uninitialised_reads == 2  # lq and eps


def test_a_failed_cuda_malloc_is_injected_by_name(gpu):
    fake, _ = gpu
    fake.faults.add("malloc_fails")
    assert fake.cudaMalloc(16) == (fake.cudaError_t.cudaErrorMemoryAllocation, None)
    assert fake.live()["device"] == 0


def test_bf16_is_stored_in_two_bytes(gpu, tmp_path):
    """bf16 I/O in its 2-byte bits (a 4-byte stand-in could not run the runner's bf16 path)."""
    _, trt = gpu
    io = {"lq": "BF16", "eps": "BF16", "hq": "BF16"}
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), io)
    runner = EngineRunner(trt, plan, tmp_path / "bf16.rtx.engine", "TensorRT-RTX")
    assert runner.buffers["lq"].nbytes == 3 * 64 * 64 * 2
    lq = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    out = runner(lq, np.zeros((1, 16, 8, 8), np.float32))
    assert np.allclose(out, lq, rtol=2 ** -8) and not np.array_equal(out, lq)  # bf16: 8 bits of mantissa


def test_an_unknown_tensor_name_has_no_dimensions(gpu):
    _, trt = gpu
    engine, _ = _context(trt, eps=False)
    assert engine.get_tensor_shape("eps") == () and engine.unknown_names == ["eps"]


@pytest.mark.parametrize("version, value", [
    ("10.8.0", 1), ("11.1.0", int(tensorrt_rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED))])
def test_the_builders_enums_have_the_real_values(version, value):
    """STRONGLY_TYPED is 1 in TensorRT 10 and, in 11, what the installed tensorrt_rtx (11's API) says: 0; the
    network flags `parse` hands the builder are 1 << that."""
    trt = fake_gpu.fake_tensorrt_builder(version, fp16_flag=version.startswith("10."))
    assert int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == value
    assert int(trt.BuilderFlag.TF32) == (7 if version.startswith("10.") else int(tensorrt_rtx.BuilderFlag.TF32))
    parse(trt, "m.onnx", trt.Logger())
    assert trt.seen["network_flags"] == 1 << value
    assert fake_gpu.FakeTrt(fake_gpu.FakeCuda()).DataType is tensorrt_rtx.DataType


def test_create_timing_cache_can_return_none_and_set_timing_cache_refuses_it():
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True, unreadable_caches=(b"unreadable",))
    config = trt.Builder(None).create_builder_config()
    assert config.create_timing_cache(b"unreadable") is None
    with pytest.raises(TypeError, match="incompatible function arguments"):
        config.set_timing_cache(None, False)
    assert config.set_timing_cache(config.create_timing_cache(b""), False)


def _device_span(fake, stream, work) -> float:
    """Device time between an event recorded before `work()` and one after it."""
    start, end = cuda.check(fake.cudaEventCreate()), cuda.check(fake.cudaEventCreate())
    cuda.check(fake.cudaEventRecord(start, stream))
    work()
    cuda.check(fake.cudaEventRecord(end, stream))
    cuda.check(fake.cudaStreamSynchronize(stream))
    return cuda.check(fake.cudaEventElapsedTime(start, end))


@pytest.mark.parametrize("enqueue_ms, kernel_ms, one, behind", [(4.0, 20.0, 1.0 + 20.0, 20.0),
                                                                 (20.0, 8.0, 20.0 + 2.0, 20.0)])
def test_kernels_start_while_the_enqueue_is_still_launching(monkeypatch, enqueue_ms, kernel_ms, one, behind):
    """An enqueue launches its kernels in 4 steps as it goes. One inference on an idle GPU: the first step's
    launch plus the kernels when the GPU is the bound (not enqueue + kernels); the launches plus the last
    step's kernels when the host is (host-bound: the GPU waits for each launch). A second enqueue queued
    behind a first: the kernels' time, or, host-bound, the launches' (20 ms, not the 8 ms of kernels)."""
    fake, trt = fake_gpu.install(monkeypatch, enqueue_ms=enqueue_ms, kernel_ms=kernel_ms)
    engine, context = _context(trt, dynamic=False)
    stream = _bind(fake, engine, context)
    assert context.execute_async_v3(int(stream))  # TensorRT's deferred setup
    cuda.check(fake.cudaStreamSynchronize(stream))
    assert _device_span(fake, stream, lambda: context.execute_async_v3(int(stream))) == pytest.approx(one, abs=0.05)
    assert context.execute_async_v3(int(stream))
    assert _device_span(fake, stream, lambda: context.execute_async_v3(int(stream))) == pytest.approx(behind, abs=0.05)


def test_real_host_spends_the_host_costs_for_real(monkeypatch):
    """With `real_host` an enqueue takes its modelled host time on the host's own clock too."""
    import time

    fake, trt = fake_gpu.install(monkeypatch, enqueue_ms=20.0, real_host=True)
    engine, context = _context(trt, dynamic=False)
    stream = _bind(fake, engine, context)
    t0 = time.perf_counter()
    assert context.execute_async_v3(int(stream))
    assert time.perf_counter() - t0 >= 0.020


@pytest.mark.parametrize("user_allocation", [False, True])
def test_tensorrt_rtx_refuses_a_users_capture_without_require_user_allocation(gpu, user_allocation):
    """TensorRT-RTX 1.2's release notes: REQUIRE_USER_ALLOCATION "is required when using CUDA stream capture";
    without it is_stream_capturable() is False and an enqueue inside the capture fails and invalidates it."""
    fake, trt = gpu
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), user_allocation=user_allocation)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    stream = _bind(fake, engine, context)
    assert context.execute_async_v3(int(stream))  # the deferred work, outside any capture
    assert context.is_stream_capturable(int(stream)) == user_allocation
    cuda.check(fake.cudaStreamBeginCapture(stream, MODE.cudaStreamCaptureModeThreadLocal))
    assert context.execute_async_v3(int(stream)) == user_allocation
    err, graph = fake.cudaStreamEndCapture(stream)
    assert (graph is not None) == user_allocation
    full_engine, full_context = _context(fake_gpu.full_tensorrt(fake), dynamic=False)
    assert not hasattr(fake_gpu.full_tensorrt(fake), "CudaGraphStrategy")


def test_the_full_tensorrt_has_no_is_stream_capturable(gpu):
    """TensorRT 11.1's Python bindings have no IExecutionContext.is_stream_capturable (tensorrt_rtx has it)."""
    fake, trt = gpu
    assert not hasattr(_context(fake_gpu.full_tensorrt(fake), dynamic=False)[1], "is_stream_capturable")
    assert hasattr(tensorrt_rtx.IExecutionContext, "is_stream_capturable")
    assert hasattr(_context(trt)[1], "is_stream_capturable")


def _whole_graph_capture(fake, trt, user_allocation: bool):
    """An identity engine's context with cuda_graph_strategy = WHOLE_GRAPH_CAPTURE, bound on a stream."""
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), user_allocation=user_allocation)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    config = engine.create_runtime_config()
    config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    context = engine.create_execution_context(runtime_config=config)
    return engine, context, _bind(fake, engine, context)


def test_whole_graph_capture_makes_tensorrt_rtx_replay_its_own_graph(gpu):
    """cuda_graph_strategy = WHOLE_GRAPH_CAPTURE: after the deferred first enqueue, TensorRT-RTX captures the
    next one and replays it from then on: one cheap graph launch on the host, the same kernels on the GPU (an
    engine built with REQUIRE_USER_ALLOCATION, as `elir-edge build` builds)."""
    fake, trt = gpu
    engine, context, stream = _whole_graph_capture(fake, trt, user_allocation=True)
    for _ in range(2):
        assert context.execute_async_v3(int(stream))
    t0 = fake.host_now
    assert context.execute_async_v3(int(stream)) and context.graph_launches == 1
    assert fake.host_now - t0 < fake.enqueue_ms / 10
    default = engine.create_execution_context()
    assert default.get_runtime_config().cuda_graph_strategy == trt.CudaGraphStrategy.DISABLED


@pytest.mark.parametrize("user_allocation", [False, True])
def test_whole_graph_capture_captures_only_an_engine_built_with_require_user_allocation(gpu, user_allocation):
    """REQUIRE_USER_ALLOCATION "ensures that inference will support graph capture": without it TensorRT-RTX's own
    capture is not made either (is_stream_capturable says so), and the enqueues run as plain launches."""
    fake, trt = gpu
    _, context, stream = _whole_graph_capture(fake, trt, user_allocation)
    for _ in range(3):
        assert context.execute_async_v3(int(stream))
    assert context.graph_launches == (1 if user_allocation else 0)
    assert context.is_stream_capturable(int(stream)) == user_allocation


def test_a_refused_cuda_graph_strategy_shows_only_when_read_back(gpu):
    """C++ setCudaGraphStrategy answers a bool (NVIDIA's apiUsage sample checks it); the Python property drops it,
    so a refusal (injected by name) leaves the old strategy, seen by reading it back."""
    fake, trt = gpu
    engine, _ = _context(trt)
    fake.faults.add("graph_strategy_refused")
    config = engine.create_runtime_config()
    config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    assert config.cuda_graph_strategy == trt.CudaGraphStrategy.DISABLED


@pytest.mark.parametrize("strategy, fallback_runs", [("LAZY", 2), ("EAGER", 0), ("NONE", 3)])
def test_tensorrt_rtx_runs_fallback_kernels_until_a_shape_is_specialised(monkeypatch, strategy, fallback_runs):
    """A dynamic engine's new shape: LAZY (the default) runs fallback kernels until the background compile ends
    (jit_ms later on the host's clock), EAGER compiles in the first enqueue (host time), NONE never compiles."""
    fake, trt = fake_gpu.install(monkeypatch, enqueue_ms=5.0, kernel_ms=20.0, jit_ms=8.0)
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(), dynamic=True)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    config = engine.create_runtime_config()
    config.dynamic_shapes_kernel_specialization_strategy = getattr(trt.DynamicShapesKernelSpecializationStrategy,
                                                                   strategy)
    context = engine.create_execution_context(runtime_config=config)
    assert context.set_input_shape("lq", (1, 3, 64, 64)) and context.set_input_shape("eps", (1, 16, 8, 8))
    stream = _bind(fake, engine, context)
    t0 = fake.host_now
    for _ in range(3):  # 5 ms of host time each: LAZY's 8 ms compile is done by the third
        assert context.execute_async_v3(int(stream))
    assert context.fallback_kernels == fallback_runs
    assert fake.host_now - t0 == pytest.approx(3 * 5.0 + (8.0 if strategy == "EAGER" else 0), abs=0.1)
    assert ((1, 3, 64, 64) in context.compiled) == (strategy != "NONE")


def test_a_runtime_cache_from_another_gpu_or_version_is_refused(gpu):
    """IRuntimeCache.deserialize validates the blob against this GPU and TensorRT-RTX version (False on a
    mismatch or a damaged blob, the cache unchanged); a matching one brings its compiled shapes."""
    fake, trt = gpu
    engine, _ = _context(trt)
    made = engine.create_runtime_config().create_runtime_cache()
    made.entries[(1, 3, 64, 64)] = 0.0
    blob = made.serialize()
    assert engine.create_runtime_config().create_runtime_cache().deserialize(blob)
    for damaged in (blob[:-3], b"not a cache"):
        assert not made.deserialize(damaged)
    trt.__version__ = "1.6.0"
    assert not engine.create_runtime_config().create_runtime_cache().deserialize(blob)
    trt.__version__ = tensorrt_rtx.__version__
    fake.gpu = ("NVIDIA GeForce RTX 3090", 8, 6)
    other = engine.create_runtime_config().create_runtime_cache()
    assert not other.deserialize(blob) and other.entries == {}


def _inspected(trt, verbosity, shapes_set):
    import json

    plan = fake_gpu.make_plan(fake_gpu.qdq_conv_graph(), dynamic=True, verbosity=verbosity)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    inspector = engine.create_engine_inspector()
    if shapes_set is not None:
        context = engine.create_execution_context()
        if shapes_set:
            assert context.set_input_shape("lq", (1, 3, 64, 64))
        inspector.execution_context = context
    return json.loads(inspector.get_engine_information(tensorrt_rtx.LayerInformationFormat.JSON))["Layers"]


@pytest.mark.parametrize("rtx", [True, False])
def test_inspector_shows_layer_types_only_when_detailed_and_formats_with_every_input_shape_set(gpu, rtx):
    """NVIDIA: LAYER_NAMES_ONLY (the default) gives names, NONE nothing, DETAILED each tensor, and a dynamic
    engine's formats only once a context with every input shape set is inspected. TensorRT 10 writes one
    "Format/Datatype" (withheld whole until then), TensorRT-RTX "Datatype" + "Format" on Myelin-style layers."""
    fake, trt = gpu
    trt = trt if rtx else fake_gpu.full_tensorrt(fake)
    assert _inspected(trt, "LAYER_NAMES_ONLY", True) == ["/int8/Conv", "/float/Conv"]
    assert _inspected(trt, "NONE", True) == []
    for shapes_set in (None, False):  # no context, or a context without the input's shape
        first = _inspected(trt, "DETAILED", shapes_set)[0]["Inputs"][0]
        assert first == ({"Name": "lq_dq", "Datatype": "Int8", "Format": "Format not available due to dynamic shapes"}
                         if rtx else {"Name": "lq_dq", "Format/Datatype": "N/A due to dynamic shapes"})
    first, second = _inspected(trt, "DETAILED", True)
    assert (first["LayerType"], "ParameterType" in first) == (("kgen", False) if rtx else ("CaskConvolution", True))
    assert first["Metadata"] == "[ONNX Layer: /int8/Conv]"
    key = "Format" if rtx else "Format/Datatype"
    assert "Int8 format" in first["Inputs"][0][key] and "FP32" in second["Inputs"][0][key]


def test_inspector_json_is_asked_for_by_its_format(gpu):
    """ONELINE gives one line a layer, not JSON: a runner asking for the wrong format cannot parse it."""
    import json

    _, trt = gpu
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(
        fake_gpu.make_plan(fake_gpu.qdq_conv_graph(), dynamic=True, verbosity="DETAILED"))
    text = engine.create_engine_inspector().get_engine_information(tensorrt_rtx.LayerInformationFormat.ONELINE)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_set_compute_capability_answers_false_where_it_cannot_set_one():
    """Its docstring: "True if successful, false otherwise": kNONE, an index past num_compute_capabilities, or
    a compute capability this TensorRT-RTX cannot target (injected by name)."""
    trt = fake_gpu.fake_tensorrt_builder("1.7.1", False, refused_sms=("120",))
    config = trt.Builder(None).create_builder_config()
    config.num_compute_capabilities = 1
    cc = tensorrt_rtx.ComputeCapability
    assert config.set_compute_capability(cc.SM75, 0)
    assert not config.set_compute_capability(cc.SM75, 1) and not config.set_compute_capability(cc.NONE, 0)
    assert not config.set_compute_capability(cc.SM120, 0)


def test_a_runtime_cache_may_not_serialize_and_set_runtime_cache_may_refuse(gpu):
    """IRuntimeCache::serialize can give no memory (NVIDIA's apiUsage sample checks it for null) and
    IRuntimeConfig.set_runtime_cache answers a bool: both failures are injectable by name."""
    fake, trt = gpu
    engine, _ = _context(trt)
    config = engine.create_runtime_config()
    cache = config.create_runtime_cache()
    assert cache.serialize().startswith(b"FAKERTC") and config.set_runtime_cache(cache)
    fake.faults |= {"cache_serialize_fails", "set_cache_refused"}
    assert cache.serialize() is None
    other = engine.create_runtime_config()
    assert not other.set_runtime_cache(cache) and other.get_runtime_cache() is None


def test_get_engine_validity_reads_the_header_and_deserialize_refuses_an_invalid_plan(gpu):
    """TensorRT-RTX's Runtime.get_engine_validity -> (EngineValidity, EngineInvalidityDiagnostics bits), from the
    header alone: an older driver or less free GPU memory than the plan needs is INVALID (and deserialize_cuda_engine
    gives None), a plan marked so is SUBOPTIMAL; the full TensorRT has no such call."""
    fake, trt = gpu
    graph = fake_gpu.identity_graph(dynamic=False)
    runtime = trt.Runtime(trt.Logger())
    validity = tensorrt_rtx.EngineValidity
    diag = tensorrt_rtx.EngineInvalidityDiagnostics
    assert runtime.get_engine_validity(fake_gpu.make_plan(graph)) == (validity.VALID, 0)
    assert runtime.get_engine_validity(fake_gpu.make_plan(graph, suboptimal=True)) == (validity.SUBOPTIMAL, 0)
    assert runtime.get_engine_validity(b"not a plan") == (validity.INVALID, int(diag.MALFORMED_ENGINE))
    old_driver = fake_gpu.make_plan(graph, min_driver=fake.driver + 10)
    assert runtime.get_engine_validity(old_driver) == (validity.INVALID, int(diag.OLD_CUDA_DRIVER))
    big = fake_gpu.make_plan(graph, device_mb=fake.memory_mb + 1)
    assert runtime.get_engine_validity(big) == (validity.INVALID, int(diag.INSUFFICIENT_GPU_MEMORY))
    assert runtime.deserialize_cuda_engine(old_driver) is None and runtime.deserialize_cuda_engine(big) is None
    full = fake_gpu.full_tensorrt(fake)
    assert not hasattr(full.Runtime(full.Logger()), "get_engine_validity")


@pytest.mark.parametrize("severity, shown", [("ERROR", False), ("WARNING", True), ("VERBOSE", True)])
def test_the_logger_writes_only_at_or_above_its_severity(gpu, capfd, severity, shown):
    """trt.Logger's real severities (ERROR 1, WARNING 2, ...): the full TensorRT's warning of a plan built on
    another GPU model is written only by a logger at WARNING or below."""
    fake, _ = gpu
    trt = fake_gpu.full_tensorrt(fake)
    assert int(trt.Logger.ERROR) == int(tensorrt_rtx.Logger.ERROR) == 1 and int(trt.Logger().min_severity) == 2
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False), built_on="NVIDIA GeForce RTX 3090")
    assert trt.Runtime(trt.Logger(getattr(trt.Logger, severity))).deserialize_cuda_engine(plan) is not None
    assert (fake_gpu.ACROSS_DEVICES in capfd.readouterr().err) == shown


def test_the_cuda_context_is_made_once_by_the_first_call_needing_it(monkeypatch):
    """The CUDA runtime makes the primary context lazily: device queries do not, cudaFree(0) (which succeeds) and
    allocations do, once; IRuntimeCache.deserialize answers False without one ("A current CUDA context must be
    present", its docstring), and TensorRT's deserialization makes it."""
    fake, trt = fake_gpu.install(monkeypatch, context_ms=50.0)
    cuda.gpu_info()
    assert not fake.context
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(fake_gpu.make_plan(fake_gpu.identity_graph()))
    assert fake.context and fake.calls.count("CUDA context creation") == 1
    fake.context = False
    blob = engine.create_runtime_config().create_runtime_cache().serialize()
    assert not engine.create_runtime_config().create_runtime_cache().deserialize(blob)
    t0 = fake.host_now
    assert fake.cudaFree(0) == (fake.cudaError_t.cudaSuccess,) and fake.host_now - t0 >= 50.0
    assert engine.create_runtime_config().create_runtime_cache().deserialize(blob)
    assert fake.cudaFree(0) == (fake.cudaError_t.cudaSuccess,) and fake.calls.count("CUDA context creation") == 2


def test_gpu_clocks_drop_when_it_idles_and_boost_under_load(monkeypatch):
    """NVIDIA's performance guide: the clock "sits idle when there is no active workload and boosts ... when the
    workload starts". Modelled where asked (`idle_s`): after that much real time without work the next `ramp_ms`
    of kernels run `cool_x` times slower; back-to-back work runs boosted."""
    import time

    fake, trt = fake_gpu.install(monkeypatch, enqueue_ms=4.0, kernel_ms=20.0, idle_s=0.05, cool_x=2.0, ramp_ms=20.0)
    engine, context = _context(trt, dynamic=False)
    stream = _bind(fake, engine, context)

    def one() -> float:
        return _device_span(fake, stream, lambda: context.execute_async_v3(int(stream)))

    cold = one()  # on an idle GPU: its 20 ms of kernels at half speed
    assert cold == pytest.approx(1.0 + 40.0, abs=0.05)
    assert one() == pytest.approx(1.0 + 20.0, abs=0.05)  # boosted, back to back
    time.sleep(0.06)
    assert one() == pytest.approx(1.0 + 40.0, abs=0.05)  # idled: slow again
    assert fake_gpu.FakeCuda().idle_s is None  # no clock model unless asked


@pytest.mark.parametrize("mode, refused", [(MODE.cudaStreamCaptureModeThreadLocal, True),
                                           (MODE.cudaStreamCaptureModeRelaxed, False)])
def test_cuda_free_and_free_host_are_refused_inside_a_capture(gpu, mode, refused):
    """cudaFree and cudaFreeHost synchronize, so a capture that forbids unsafe calls refuses them (and is
    invalidated); a Relaxed one does not."""
    fake, _ = gpu
    device, host = cuda.check(fake.cudaMalloc(16)), cuda.check(fake.cudaMallocHost(16))
    stream = cuda.check(fake.cudaStreamCreate())
    cuda.check(fake.cudaStreamBeginCapture(stream, mode))
    unsupported = fake.cudaError_t.cudaErrorStreamCaptureUnsupported
    assert (fake.cudaFree(device)[0] == unsupported) == refused
    assert (fake.cudaFreeHost(host)[0] == unsupported) == refused
    assert (fake.cudaStreamEndCapture(stream)[1] is None) == refused
    assert fake.live()["device"] == fake.live()["host"] == (1 if refused else 0)


def test_a_capture_is_ended_only_by_the_thread_that_began_it(gpu):
    """cudaErrorStreamCaptureWrongThread: a capture not begun Relaxed, ended on another thread; it goes on."""
    fake, _ = gpu
    stream = cuda.check(fake.cudaStreamCreate())
    cuda.check(fake.cudaStreamBeginCapture(stream, MODE.cudaStreamCaptureModeThreadLocal))
    result = []
    t = threading.Thread(target=lambda: result.append(fake.cudaStreamEndCapture(stream)))
    t.start()
    t.join()
    assert result == [(fake.cudaError_t.cudaErrorStreamCaptureWrongThread, None)]
    assert int(cuda.check(fake.cudaStreamIsCapturing(stream))) == 1
    assert cuda.check(fake.cudaStreamEndCapture(stream)) is not None


def test_graph_instantiation_can_fail_and_the_runner_goes_on_without_a_graph(gpu, tmp_path):
    """cudaGraphInstantiate can fail (injected: `instantiate_fails`) and gives no graph exec; the runner's capture
    then destroys the graph and runs without one, with a warning (on the full TensorRT, where it captures)."""
    fake, _ = gpu
    fake.faults.add("instantiate_fails")
    graph = cuda.check(fake.cudaStreamEndCapture(_begun(fake)))
    assert fake.cudaGraphInstantiate(graph, 0) == (fake.cudaError_t.cudaErrorNotSupported, None)
    cuda.check(fake.cudaGraphDestroy(graph))
    plan = fake_gpu.make_plan(fake_gpu.identity_graph(dynamic=False))
    runner = EngineRunner(fake_gpu.full_tensorrt(fake), plan, tmp_path / "m.trt", "TensorRT", cuda_graph=True)
    lq = np.zeros((1, 3, 64, 64), np.float32)
    with pytest.warns(UserWarning, match=r"CUDA graph capture failed \(cudaGraphInstantiate failed"):
        runner(lq, np.zeros((1, 16, 8, 8), np.float32))
    assert runner.kind == "TensorRT" and fake.live()["graphs"] == fake.live()["graph_execs"] == 0


def _begun(fake):
    stream = cuda.check(fake.cudaStreamCreate())
    cuda.check(fake.cudaStreamBeginCapture(stream, MODE.cudaStreamCaptureModeThreadLocal))
    return stream
