"""Stand-ins for `tensorrt` and `cuda.bindings.runtime` on a machine without a GPU.

"Device" memory is host memory, a "serialized engine" is the ONNX it was built from and runs in ONNX
Runtime, events read the host clock, and stream capture records enqueues for replay. Only the calls
elir-edge makes exist, with the real signatures (checked against cuda-bindings where it is installed),
so the TensorRT module's buffer, stream, event, CUDA-graph and manifest logic runs on the CPU.
"""

from __future__ import annotations

import ctypes
import sys
import time
import types

import numpy as np
import onnx
import onnxruntime as ort

VERSION = "10.99.0-fake"
GPU = {"name": "Fake GPU", "compute_capability": "8.9", "cuda_driver": "12.8"}


class _Runtime(types.ModuleType):
    """cuda.bindings.runtime: every call returns (error, *values), error 0 meaning success."""

    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0)

    def __init__(self):
        super().__init__("cuda.bindings.runtime")
        self.blocks, self.capture, self.launches = {}, None, 0

    def _alloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaMalloc(self, size):
        return self._alloc(size)

    def cudaMallocHost(self, size):
        return self._alloc(size)

    def cudaFree(self, ptr):
        del self.blocks[int(ptr)]
        return (0,)

    cudaFreeHost = cudaFree

    def cudaStreamCreate(self):
        return 0, 7

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaEventCreate(self):
        return 0, types.SimpleNamespace(t=None)

    def cudaEventRecord(self, event, stream):
        event.t = time.perf_counter()
        return (0,)

    def cudaEventSynchronize(self, event):
        return (0,)

    def cudaEventElapsedTime(self, start, end):
        return 0, (end.t - start.t) * 1000

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        ctypes.memmove(int(dst), int(src), count)
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.capture = []
        return (0,)

    def cudaStreamEndCapture(self, stream):
        graph, self.capture = self.capture, None
        return 0, graph

    def cudaGraphInstantiate(self, graph, flags):
        return 0, list(graph)

    def cudaGraphLaunch(self, graph_exec, stream):
        self.launches += 1
        for op in graph_exec:
            op()
        return (0,)


class _Context:
    def __init__(self, engine):
        self.engine, self.addresses = engine, {}

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle):
        rt = self.engine.rt
        if rt.capture is not None:
            rt.capture.append(self._execute)
        else:
            self._execute()
        return True

    def _execute(self):
        e = self.engine
        feeds = {}
        for name in e.input_names:
            shape, n = e.shapes[name], int(np.prod(e.shapes[name])) * 4
            memory = (ctypes.c_char * n).from_address(self.addresses[name])
            feeds[name] = np.frombuffer(memory, np.float32).reshape(shape)
        out = np.ascontiguousarray(e.session.run(None, feeds)[0], np.float32)
        ctypes.memmove(self.addresses[e.output_name], out.ctypes.data, out.nbytes)


class _Engine:
    def __init__(self, rt, session):
        self.rt, self.session = rt, session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_name = session.get_outputs()[0].name
        self.shapes = {i.name: tuple(i.shape) for i in [*session.get_inputs(), *session.get_outputs()]}
        self.names = [*self.input_names, self.output_name]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "INPUT" if name in self.input_names else "OUTPUT"

    def get_tensor_shape(self, name):
        return self.shapes[name]

    def get_tensor_dtype(self, name):
        return np.float32

    def create_execution_context(self):
        return _Context(self)


def _tensorrt(rt) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = VERSION
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.BuilderFlag = types.SimpleNamespace(FP16=0)
    trt.nptype = np.dtype

    class Network:
        onnx = None

    class Parser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, data):
            try:
                onnx.checker.check_model(onnx.load_from_string(data))
            except Exception as e:  # the real parser reports errors the same way: a list, not a raise
                self.errors.append(str(e))
                return False
            self.network.onnx = data
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class Config:
        def set_memory_pool_limit(self, pool, size):
            self.workspace = size

        def create_timing_cache(self, data):
            return types.SimpleNamespace(serialize=lambda: b"timing cache")

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            return network.onnx

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            try:
                return _Engine(rt, ort.InferenceSession(data, providers=["CPUExecutionProvider"]))
            except Exception:  # TensorRT returns None for a bad plan
                return None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    return trt


def install(monkeypatch) -> _Runtime:
    """Put the fakes where `import tensorrt` and `from cuda.bindings import runtime` find them."""
    from elir_edge.runtime import tensorrt as tensorrt_engine

    rt = _Runtime()
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.bindings, bindings.runtime = bindings, rt
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", rt),
                         ("tensorrt", _tensorrt(rt))):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(tensorrt_engine, "gpu_info", lambda: dict(GPU))
    return rt
