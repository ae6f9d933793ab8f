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
    the capture is invalidated; after one plain enqueue the same capture succeeds."""
    fake, trt = gpu
    engine, context = _context(trt, dynamic=False)
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
