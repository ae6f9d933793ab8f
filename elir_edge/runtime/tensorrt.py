"""TensorRT engines at run time: load an engine after checking its manifest against this machine, and
run it on GPU 0 with pinned buffers, one stream and CUDA-event timing.

`load_engine` refuses, in one line, an engine whose manifest names another TensorRT or GPU. Without
TensorRT or an NVIDIA GPU every entry point raises EngineUnavailable saying which is missing.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from elir_edge.runtime.batching import in_batches

INSTALL_HINT = "pip install 'elir-edge[tensorrt]' on a machine with an NVIDIA GPU"

_GPU_PROBE = """
import json
from cuda.bindings import runtime as rt
err, n = rt.cudaGetDeviceCount()
if int(err) != 0 or n < 1:
    print(json.dumps({"error": f"cudaGetDeviceCount: {err}, {n if int(err) == 0 else 0} device(s)"}))
else:
    err, p = rt.cudaGetDeviceProperties(0)
    name = p.name.decode(errors="replace").rstrip("\\x00") if isinstance(p.name, bytes) else str(p.name)
    err, v = rt.cudaDriverGetVersion()
    print(json.dumps({"name": name, "compute_capability": f"{p.major}.{p.minor}",
                      "cuda_driver": f"{v // 1000}.{v % 1000 // 10}"}))
"""


class EngineUnavailable(Exception):
    """TensorRT, the CUDA bindings or a GPU is missing, or an engine does not fit this machine."""


def _cudart():
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        raise EngineUnavailable(f"the CUDA Python bindings are not installed ({INSTALL_HINT})") from None
    return rt


def _ok(result):
    """cuda-python returns (error, *values): raise on an error, hand back the value(s)."""
    err, *values = result
    if int(err) != 0:
        raise EngineUnavailable(f"CUDA runtime error {err}")
    return values[0] if len(values) == 1 else values


def gpu_info() -> dict:
    """Name and compute capability of GPU 0, asked in a child process: a CUDA runtime without a
    device can crash the asking process (TensorRT's lean runtime segfaults on deserialize)."""
    _cudart()
    try:
        out = subprocess.run([sys.executable, "-c", _GPU_PROBE], capture_output=True, text=True, timeout=60)
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        raise EngineUnavailable("no NVIDIA GPU answered (the CUDA device probe failed)") from None
    if "error" in info:
        raise EngineUnavailable(f"no NVIDIA GPU ({info['error']})")
    return info


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineUnavailable(f"TensorRT is not installed ({INSTALL_HINT})") from None
    return trt


def environment() -> dict:
    """TensorRT version and GPU of this machine, or EngineUnavailable."""
    trt = import_tensorrt()
    return {"tensorrt": trt.__version__, **{f"gpu_{k}": v for k, v in gpu_info().items()}}


def check_manifest(engine_manifest: dict, here: dict) -> None:
    """An engine runs only with the TensorRT version and GPU it was built for."""
    for key, what in (("tensorrt", "TensorRT version"), ("gpu_compute_capability", "GPU compute capability"),
                      ("gpu_name", "GPU")):
        if engine_manifest.get(key) != here.get(key):
            raise EngineUnavailable(f"engine built for {what} {engine_manifest.get(key)}, this machine has "
                                    f"{here.get(key)}: rebuild it here with `elir-edge quantize`")


def read_engine_manifest(engine_path: Path) -> dict:
    side = Path(str(engine_path) + ".json")
    if not side.is_file():
        raise EngineUnavailable(f"{engine_path} has no manifest {side.name}: build it with `elir-edge quantize`")
    return json.loads(side.read_text())


def source_onnx(engine_path: Path) -> Path:
    """The ONNX an engine was built from (beside it): its metadata and input shapes describe the engine."""
    onnx_path = Path(engine_path).parent / read_engine_manifest(engine_path).get("onnx", "")
    if not onnx_path.is_file() or onnx_path.suffix != ".onnx":
        raise EngineUnavailable(f"{engine_path}: the ONNX it was built from is not beside it: keep the engine "
                                "in its export folder")
    return onnx_path


def load_engine(engine_path: Path):
    """Deserialize an engine after checking its manifest against this machine."""
    engine_path = Path(engine_path)
    manifest = read_engine_manifest(engine_path)
    check_manifest(manifest, environment())
    trt = import_tensorrt()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineUnavailable(f"{engine_path} is damaged or truncated: rebuild it with `elir-edge quantize`")
    return engine


class TrtRunner:
    """A static-shape engine on GPU 0: pinned host and device buffers per I/O tensor, one stream,
    `execute_async_v3`. `device_timed()` times one run with CUDA events the way trtexec does: compute
    only (the enqueue) and end to end (host->device copies, enqueue, device->host copies)."""

    def __init__(self, path: Path, cuda_graph: bool = False):
        trt = import_tensorrt()
        self.rt = rt = _cudart()
        self.path, self.name = Path(path), Path(path).name
        self.engine = load_engine(path)
        self.graph_path = source_onnx(path)  # its metadata and shapes describe the engine
        self.context = self.engine.create_execution_context()
        self.stream = _ok(rt.cudaStreamCreate())
        self.inputs, self.outputs = {}, {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineUnavailable(f"{path}: input {name} has a dynamic shape {shape}; elir-edge builds "
                                        "static engines: rebuild it with `elir-edge quantize`")
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            host_ptr = _ok(rt.cudaMallocHost(nbytes))
            host = np.ctypeslib.as_array(ctypes.cast(host_ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))),
                                         shape)
            device = _ok(rt.cudaMalloc(nbytes))
            self.context.set_tensor_address(name, int(device))
            side = self.inputs if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else self.outputs
            side[name] = (host, device, nbytes)
        if "lq" not in self.inputs or len(self.outputs) != 1:
            raise EngineUnavailable(f"{path} is not an elir-edge engine (inputs {sorted(self.inputs)}, "
                                    f"{len(self.outputs)} outputs): build it with `elir-edge quantize`")
        self.batch = self.inputs["lq"][0].shape[0]
        self.needs_eps = "eps" in self.inputs
        self.events = [_ok(rt.cudaEventCreate()) for _ in range(4)]
        self.graph = None
        if cuda_graph:
            self.graph = self._capture()
        self.on_gpu = True
        self.kind = "TensorRT" + (" + CUDA graph" if cuda_graph else "")

    def _enqueue(self) -> None:
        if self.graph is not None:
            _ok(self.rt.cudaGraphLaunch(self.graph, self.stream))
        elif not self.context.execute_async_v3(int(self.stream)):
            raise EngineUnavailable(f"TensorRT failed to enqueue {self.path}")

    def _capture(self):
        """Record one enqueue as a CUDA graph; the first plain enqueue lets TensorRT allocate outside capture."""
        rt = self.rt
        self._enqueue()
        _ok(rt.cudaStreamSynchronize(self.stream))
        _ok(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
        self._enqueue()
        graph = _ok(rt.cudaStreamEndCapture(self.stream))
        return _ok(rt.cudaGraphInstantiate(graph, 0))

    def _run(self) -> tuple[float, float]:
        """One copy-in, enqueue, copy-out on the stream; (compute ms, end-to-end ms) from CUDA events."""
        rt, (e0, e1, e2, e3) = self.rt, self.events
        _ok(rt.cudaEventRecord(e0, self.stream))
        for host, device, nbytes in self.inputs.values():
            _ok(rt.cudaMemcpyAsync(device, host.ctypes.data, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                   self.stream))
        _ok(rt.cudaEventRecord(e1, self.stream))
        self._enqueue()
        _ok(rt.cudaEventRecord(e2, self.stream))
        for host, device, nbytes in self.outputs.values():
            _ok(rt.cudaMemcpyAsync(host.ctypes.data, device, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                   self.stream))
        _ok(rt.cudaEventRecord(e3, self.stream))
        _ok(rt.cudaEventSynchronize(e3))
        return _ok(rt.cudaEventElapsedTime(e1, e2)), _ok(rt.cudaEventElapsedTime(e0, e3))

    def _load(self, lq: np.ndarray, eps: np.ndarray | None) -> None:
        self.inputs["lq"][0][...] = lq
        if self.needs_eps:
            self.inputs["eps"][0][...] = eps

    def run_batch(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        self._load(lq, eps)
        self._run()
        return next(iter(self.outputs.values()))[0].astype(np.float32)

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        return in_batches(self.run_batch, self.batch, lq, eps)

    def device_timed(self, lq: np.ndarray, eps: np.ndarray | None) -> dict:
        """One timed run of exactly one engine batch."""
        self._load(lq, eps)
        compute, end_to_end = self._run()
        return {"compute_ms": compute, "end_to_end_ms": end_to_end}

    def close(self) -> None:
        """Give back the pinned and device memory."""
        rt = self.rt
        for host, device, _ in [*self.inputs.values(), *self.outputs.values()]:
            rt.cudaFree(device)
            rt.cudaFreeHost(host.ctypes.data)
        self.inputs, self.outputs = {}, {}
