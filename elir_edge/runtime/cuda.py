"""CUDA for the engine runners, shared by TensorRT and TensorRT-RTX: the runtime bindings (checked
against the driver), the device probe, pinned and device buffers, one stream, events and CUDA graphs.

Every call's status is checked. The probe runs in this process and once: it only asks the CUDA
runtime for a device count and properties, which is safe without a GPU (it is TensorRT that must not
be touched without one), and holds no context that an exclusive-process GPU would refuse a child.
"""

from __future__ import annotations

import ctypes
import functools
import time

import numpy as np

from elir_edge.errors import UserError

BINDINGS_HINT = "pip install cuda-bindings (the CUDA Python bindings)"


class CudaUnavailable(UserError):
    """No CUDA bindings, no driver that fits them, or no GPU."""


class CudaError(UserError):
    """A CUDA call failed."""


def bindings():
    """cuda.bindings.runtime, refused in one line where the driver is older than the bindings need."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        raise CudaUnavailable(f"the CUDA Python bindings are not installed ({BINDINGS_HINT})") from None
    check_driver(rt)
    return rt


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0


def check_driver(rt) -> None:
    """cuda-bindings N.x calls the driver's CUDA N API: a CUDA 12 driver (< 580) with bindings 13 is not
    'no GPU', it is the wrong bindings; say which to install."""
    import importlib

    installed = getattr(importlib.import_module("cuda.bindings"), "__version__", "0")
    err, version = rt.cudaDriverGetVersion()
    driver = int(version) // 1000 if int(err) == 0 else 0
    need = _major(installed)
    if driver == 0:
        raise CudaUnavailable("no NVIDIA driver (cudaDriverGetVersion found none): run on a machine with an "
                              "NVIDIA GPU and its driver")
    if need > driver:
        raise CudaUnavailable(f"the NVIDIA driver here supports CUDA {driver}, the installed cuda-bindings "
                              f"{installed} need CUDA {need}: pip install 'cuda-bindings=={driver}.*' "
                              "(or update the driver)")


def check(result, what: str = "CUDA call"):
    """cuda-bindings returns (error, *values): raise on an error, hand back the value(s)."""
    err, *values = result
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise CudaError(f"{what} failed: {name} ({int(err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@functools.lru_cache(maxsize=1)
def gpu_info() -> dict:
    """Name, compute capability and CUDA driver of GPU 0, asked once per process."""
    rt = bindings()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise CudaUnavailable(f"no NVIDIA GPU (cudaGetDeviceCount: {getattr(err, 'name', err)})")
    props = check(rt.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    version = check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
    return {"name": name.rstrip("\x00"), "compute_capability": f"{props.major}.{props.minor}",
            "cuda_driver": f"{version // 1000}.{version % 1000 // 10}"}


def make_context(rt) -> float:
    """The process's CUDA context, made now by cudaFree(0) (a no-op once it exists); returns the milliseconds it
    took, so the first engine's load time is not the context's creation."""
    return host_ms(lambda: check(rt.cudaFree(0), "cudaFree(0), which makes the CUDA context"))


class Buffer:
    """One tensor's pinned host memory (a numpy view of the right dtype and shape) and device memory; where
    the device memory cannot be had, the pinned memory is given back before the error is raised."""

    def __init__(self, rt, shape: tuple, dtype: np.dtype):
        self.rt, self.shape, self.dtype = rt, tuple(shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.host_ptr = check(rt.cudaMallocHost(self.nbytes), "cudaMallocHost")
        raw = (ctypes.c_byte * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(raw, np.uint8).view(self.dtype).reshape(self.shape)  # bytes, viewed as dtype
        try:
            self.device = check(rt.cudaMalloc(self.nbytes), "cudaMalloc")
        except CudaError:
            check(rt.cudaFreeHost(self.host_ptr), "cudaFreeHost")
            self.host_ptr = self.host = None
            raise

    def to_device(self, stream) -> None:
        check(self.rt.cudaMemcpyAsync(self.device, self.host_ptr, self.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "copy to device")

    def to_host(self, stream) -> None:
        check(self.rt.cudaMemcpyAsync(self.host_ptr, self.device, self.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "copy to host")

    def free(self) -> None:
        if self.device is not None:
            check(self.rt.cudaFree(self.device), "cudaFree")
            check(self.rt.cudaFreeHost(self.host_ptr), "cudaFreeHost")
            self.device = self.host_ptr = self.host = None


class Stream:
    """One stream, its events, and an optional CUDA graph of one enqueue."""

    def __init__(self, rt):
        self.rt = rt
        self.handle = check(rt.cudaStreamCreate(), "cudaStreamCreate")
        self.events: list = []
        self.graph_exec = None

    def event(self):
        e = check(self.rt.cudaEventCreate(), "cudaEventCreate")
        self.events.append(e)
        return e

    def record(self, event) -> None:
        check(self.rt.cudaEventRecord(event, self.handle), "cudaEventRecord")

    def elapsed_ms(self, start, end) -> float:
        return float(check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def synchronize(self) -> None:
        check(self.rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def capture(self, enqueue) -> None:
        """Record `enqueue()` as a CUDA graph. The capture always ends, also when the enqueue fails (a stream
        left capturing breaks every later call), and the graph is destroyed once instantiated. ThreadLocal, as
        trtexec captures: Global would forbid unsafe CUDA calls on every other thread meanwhile (TensorRT-RTX's
        compile thread among them)."""
        rt = self.rt
        check(rt.cudaStreamBeginCapture(self.handle, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
              "cudaStreamBeginCapture")
        failure = None
        try:
            enqueue()
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the capture is closed
            failure = e
        err, graph = rt.cudaStreamEndCapture(self.handle)
        if failure is not None or int(err) != 0:
            if graph is not None and int(graph):
                rt.cudaGraphDestroy(graph)
            if failure is not None:
                raise failure
            check((err,), "cudaStreamEndCapture")
        try:
            self.graph_exec = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def launch_graph(self) -> None:
        check(self.rt.cudaGraphLaunch(self.graph_exec, self.handle), "cudaGraphLaunch")

    def drop_graph(self) -> None:
        """Destroy the captured graph, if any (its buffers changed, or the stream closes)."""
        if self.graph_exec is not None:
            check(self.rt.cudaGraphExecDestroy(self.graph_exec), "cudaGraphExecDestroy")
            self.graph_exec = None

    def close(self) -> None:
        rt = self.rt
        if self.handle is None:
            return
        self.drop_graph()
        for e in self.events:
            check(rt.cudaEventDestroy(e), "cudaEventDestroy")
        self.events = []
        check(rt.cudaStreamDestroy(self.handle), "cudaStreamDestroy")
        self.handle = None


def host_ms(fn) -> float:
    """Host time of one call, in milliseconds (the enqueue cost trtexec reports on its own)."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000
