"""A stand-in GPU that fails the way CUDA and TensorRT fail, built on the real types.

`cuda.bindings.runtime` and `tensorrt_rtx` both import on a machine without a GPU: the stand-in takes
their real enums and handle types (cudaError_t, cudaMemcpyKind, cudaStream_t, cudaEvent_t, cudaGraph_t,
DataType, TensorIOMode) and the real return-tuple shapes, and models what the engine runner must get
right:
- streams are asynchronous: copies and kernels are queued and run at sync points, so a host buffer
  read before a sync is stale;
- device memory lives outside the host's address space: only cudaMemcpy reaches it, and a copy whose
  kind does not match its pointers is refused (cudaErrorInvalidValue);
- events carry simulated device time on a virtual clock (optionally with GPU clocks that drop when the GPU
  idles, `idle_s`); every host call costs modelled host time and
  an enqueue costs `enqueue_ms`, made in `launches` steps, each launching its share of the kernels as it
  is made, so the GPU starts while the host still enqueues (real kernels do): a GPU idling while the host
  enqueues shows in the events, and where the enqueue outlasts the kernels the run is host-bound
  (`real_host` also spends the host costs for real, for a runner that reads the host's own clock);
- calls that are illegal during stream capture are refused (cudaErrorStreamCaptureUnsupported) by CUDA's
  capture-mode rules (Global forbids them on every thread, ThreadLocal on the capturing one, Relaxed
  nowhere), and a refused call invalidates the capture, so cudaStreamEndCapture fails and returns no graph;
- a kernel that reads device memory no copy has written is counted (`uninitialised_reads`);
- every stream, event, graph, graph exec and allocation is counted, so leaks show;
- an "engine" is its ONNX graph run by ONNX Runtime, with the I/O dtypes the plan declares (fp16, int8,
  bool, bf16 as its 2-byte bits; dynamic dimensions reported as -1), so outputs are compared with a
  tolerance, never bit-exact. TensorRT's own refusals are kept: `set_input_shape` returns False outside
  the optimization profile, `execute_async_v3` returns False while an address or an input shape is
  missing, and the first enqueue after the context is made or an input shape changes does deferred work
  that a stream capture cannot hold (inside one it returns False and invalidates the capture: enqueue
  once before capturing, as trtexec does);
- TensorRT-RTX only (`FakeTrt(name="tensorrt_rtx")`, what `install` puts in place; `full_tensorrt` is
  TensorRT 10 without these): a stream capture by the user of an engine built without
  REQUIRE_USER_ALLOCATION is refused (`is_stream_capturable`, which only its context has, says so), and so
  is its own capture: an IRuntimeConfig with `cuda_graph_strategy = WHOLE_GRAPH_CAPTURE` (a setting that can
  be refused, seen only by reading it back) makes the context capture and replay its own graphs only for an
  engine built with that flag; a
  dynamic engine's new shape runs fallback kernels (`fallback_x` times slower) until its JIT compile ends
  (LAZY, the default: `jit_ms` of host time later, in the background), compiles in the enqueue (EAGER), or
  never (NONE); the compiled shapes are kept in the runtime cache, which serializes, and which
  `deserialize` refuses (False) when it was made on another GPU or TensorRT-RTX version.
- the engine inspector gives what NVIDIA documents: layer names only unless the plan was built with
  ProfilingVerbosity.DETAILED (nothing with NONE), and for a dynamic engine formats only once an execution
  context with every input shape set is given to it; TensorRT 10 writes "Format/Datatype" strings,
  TensorRT-RTX (11's schema) "Datatype" + "Format" on Myelin-style layers. Its layers are the ONNX graph's
  nodes, Q/DQ fused away: a convolution fed by a DequantizeLinear reads INT8 unless the plan says TensorRT
  chose float kernels (`int8_kernels=False`).
Faults are injected by name (`faults`), one per defect the runner has had.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import types

import numpy as np
import onnxruntime as ort
import tensorrt_rtx as real_trt
from cuda.bindings import runtime as real_rt

E = real_rt.cudaError_t
OK = E.cudaSuccess
KIND = real_rt.cudaMemcpyKind
MODE = real_rt.cudaStreamCaptureMode
DEVICE_BASE = 0x7F00_0000_0000  # fake device addresses: never mapped in this process


def make_plan(onnx_bytes: bytes, io: dict[str, str] | None = None, dynamic: bool = False,
              profile: tuple | None = None, user_allocation: bool = False, verbosity: str = "LAYER_NAMES_ONLY",
              int8_kernels: bool = True, min_driver: int = 0, device_mb: int = 0, suboptimal: bool = False,
              built_on: str | None = None) -> bytes:
    """A stand-in serialized engine: a JSON header (I/O dtypes by TensorRT DataType name, dynamic dims, the
    optimization profile of `lq` as (B, H, W) min, opt, max, whether it was built with
    BuilderFlag.REQUIRE_USER_ALLOCATION, its ProfilingVerbosity (TensorRT's default unless said), whether
    TensorRT chose INT8 kernels for the Q/DQ convolutions, what TensorRT-RTX's get_engine_validity reads in
    the header: the CUDA driver it needs, the device memory it needs in MiB, whether it is SUBOPTIMAL here) and
    the ONNX graph it 'runs'; `built_on`: the GPU a full TensorRT plan was built on. A dynamic plan without a
    profile gets the one `elir-edge build` sets by default (written out here, not imported)."""
    header = json.dumps({"io": io or {}, "dynamic": dynamic, "profile": profile, "user_allocation": user_allocation,
                         "verbosity": verbosity, "int8_kernels": int8_kernels, "min_driver": min_driver,
                         "device_mb": device_mb, "suboptimal": suboptimal, "built_on": built_on}).encode()
    return b"FAKEPLAN" + len(header).to_bytes(4, "little") + header + onnx_bytes


def identity_graph(eps: bool = True, dynamic: bool = True, size: int = 64, batch: int = 1) -> bytes:
    """The smallest graph with an elir-edge engine's I/O: lq [N,3,H,W] (+ eps [N,16,H/8,W/8], unused) -> hq = lq,
    symbolic N, H, W where `dynamic`, and the image_size metadata export writes; so a test knows each output."""
    from onnx import TensorProto, helper

    dims = ["N", 3, "H", "W"] if dynamic else [batch, 3, size, size]
    inputs = [helper.make_tensor_value_info("lq", TensorProto.FLOAT, dims)]
    if eps:
        latent = ["N", 16, "h", "w"] if dynamic else [batch, 16, size // 8, size // 8]
        inputs.append(helper.make_tensor_value_info("eps", TensorProto.FLOAT, latent))
    graph = helper.make_graph([helper.make_node("Identity", ["lq"], ["hq"])], "identity", inputs,
                              [helper.make_tensor_value_info("hq", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"image_size": f"{size}x{size}", "task": "denoising"})
    return model.SerializeToString()


def qdq_conv_graph(size: int = 64) -> bytes:
    """lq -> Q/DQ (int8, zero point 0) -> 3x3 conv with DQ'd int8 weights -> float 3x3 conv -> hq, dynamic N,
    H, W: one convolution TensorRT may run in INT8 and one it runs in float, so a test knows each count."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w8 = numpy_helper.from_array(rng.integers(-127, 128, (3, 3, 3, 3)).astype(np.int8), "w8")
    w32 = numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32) * 0.1, "w32")
    scale, zero = numpy_helper.from_array(np.float32(1 / 127), "s"), numpy_helper.from_array(np.int8(0), "z")
    nodes = [helper.make_node("QuantizeLinear", ["lq", "s", "z"], ["lq_q"]),
             helper.make_node("DequantizeLinear", ["lq_q", "s", "z"], ["lq_dq"]),
             helper.make_node("DequantizeLinear", ["w8", "s", "z"], ["w_dq"]),
             helper.make_node("Conv", ["lq_dq", "w_dq"], ["mid"], name="/int8/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["mid", "w32"], ["hq"], name="/float/Conv", pads=[1, 1, 1, 1])]
    dims = ["N", 3, "H", "W"]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("lq", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("hq", TensorProto.FLOAT, dims)], [w8, w32, scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"image_size": f"{size}x{size}", "task": "denoising",
                                   "int8_flavour": "tensorrt (int8 zero point 0)"})
    return model.SerializeToString()


class FakeCuda(types.ModuleType):
    """cuda.bindings.runtime on a virtual clock."""

    cudaError_t = E
    cudaMemcpyKind = KIND
    cudaStreamCaptureMode = real_rt.cudaStreamCaptureMode

    def __init__(self, *, enqueue_ms: float = 5.0, kernel_ms: float = 2.0, gb_s: float = 10.0,
                 gpu=("NVIDIA GeForce RTX 2080 Ti", 7, 5), driver: int = 13000, memory_mb: int = 11264,
                 faults: set[str] = frozenset(),
                 launches: int = 4, jit_ms: float = 200.0, fallback_x: float = 3.0, real_host: bool = False,
                 context_ms: float = 0.0, idle_s: float | None = None, cool_x: float = 2.0, ramp_ms: float = 50.0):
        super().__init__("cuda.bindings.runtime")
        self.enqueue_ms, self.kernel_ms, self.gb_s, self.gpu, self.driver = enqueue_ms, kernel_ms, gb_s, gpu, driver
        self.memory_mb = memory_mb  # free device memory
        self.launches, self.jit_ms, self.fallback_x = launches, jit_ms, fallback_x
        self.real_host = real_host  # host costs also spent for real (sleeps), for what the host's clock measures
        self.context_ms, self.context = context_ms, False  # the CUDA context: made by the first call needing it
        # GPU clocks (None: none modelled): idle for `idle_s` of the host's real time, the GPU runs its next `ramp_ms`
        # of work `cool_x` times slower while it boosts again
        self.idle_s, self.cool_x, self.ramp_ms = idle_s, cool_x, ramp_ms
        self.last_busy, self.ramp_left = float("-inf"), 0.0
        self.faults = set(faults)
        self.host_now = 0.0  # virtual host clock (ms)
        self.device_free = 0.0  # when the GPU finishes what is queued (ms)
        self.host_mem: dict[int, object] = {}  # pinned: real ctypes buffers, numpy can view them
        self.device_mem: dict[int, bytearray] = {}
        self.next_device = DEVICE_BASE
        self.streams: dict[int, dict] = {}
        self.events: dict[int, dict] = {}
        self.graphs, self.execs = {}, {}
        self.handles = 100
        self.calls: list[str] = []
        self.capture_modes: list = []  # the mode of every capture begun
        self.written: set[int] = set()  # device allocations a copy or a kernel has written
        self.uninitialised_reads = 0  # kernel inputs read from device memory nothing had written

    # bookkeeping ---------------------------------------------------------------------------------
    def _tick(self, name: str, ms: float = 0.01):
        self.calls.append(name)
        self.host_now += ms
        if self.real_host and ms >= 1:
            time.sleep(ms / 1000)

    def _ensure_context(self) -> None:
        """The primary context, made (its `context_ms` of host time) by the first call that needs one, as the CUDA
        runtime does: allocations, streams, events, cudaFree(0), and TensorRT's deserialization; never the device
        queries (count, properties, driver version)."""
        if not self.context:
            self.context = True
            self._tick("CUDA context creation", self.context_ms)

    def _handle(self) -> int:
        self.handles += 1
        return self.handles

    def _release(self, call: str, table: dict, handle, missing=E.cudaErrorInvalidValue) -> tuple:
        """A free/destroy call: the handle leaves its table, or the call fails as CUDA does for an unknown one."""
        self._tick(call)
        return (OK,) if table.pop(int(handle), None) is not None else (missing,)

    def _capturing(self) -> bool:
        return any(s["capture"] is not None for s in self.streams.values())

    def _refused_in_capture(self) -> bool:
        """Whether this thread may not make a potentially unsafe call (allocation, sync) now, by CUDA's
        capture modes: a capture this thread began in Global or ThreadLocal mode forbids it, and so does a
        Global capture begun on any other thread; Relaxed forbids nothing. The refusal invalidates those
        captures (CUDA programming guide, 'Invalidation')."""
        me = threading.get_ident()
        blocking = [s for s in self.streams.values() if s["capture"] is not None
                    and s["mode"] != MODE.cudaStreamCaptureModeRelaxed
                    and (s["thread"] == me or s["mode"] == MODE.cudaStreamCaptureModeGlobal)]
        for s in blocking:
            s["invalidated"] = True
        return bool(blocking)

    def live(self) -> dict:
        return {"streams": len(self.streams), "events": len(self.events), "graphs": len(self.graphs),
                "graph_execs": len(self.execs), "host": len(self.host_mem), "device": len(self.device_mem)}

    # device info ---------------------------------------------------------------------------------
    def cudaDriverGetVersion(self):
        return OK, self.driver

    def cudaGetDeviceCount(self):
        return (OK, 1) if self.gpu else (E.cudaErrorNoDevice, 0)

    def cudaGetDeviceProperties(self, device):
        name, major, minor = self.gpu
        return OK, types.SimpleNamespace(name=name.encode(), major=major, minor=minor)

    # memory --------------------------------------------------------------------------------------
    def cudaMallocHost(self, size):
        import ctypes

        self._ensure_context()
        self._tick("cudaMallocHost")
        if self._refused_in_capture():
            return E.cudaErrorStreamCaptureUnsupported, None
        buf = (ctypes.c_byte * size)()
        ctypes.memset(buf, 0x7F, size)  # garbage until written: a read before the copy lands shows
        self.host_mem[ctypes.addressof(buf)] = buf
        return OK, ctypes.addressof(buf)

    def cudaMalloc(self, size):
        self._ensure_context()
        self._tick("cudaMalloc")
        if self._refused_in_capture():
            return E.cudaErrorStreamCaptureUnsupported, None
        if "malloc_fails" in self.faults:
            return E.cudaErrorMemoryAllocation, None
        ptr, self.next_device = self.next_device, self.next_device + max(size, 256)
        self.device_mem[ptr] = bytearray(size)
        return OK, ptr

    def cudaFree(self, ptr):
        """cudaFree(0) frees nothing and succeeds (the usual way to make the context); others free an allocation.
        Refused where a capture forbids unsafe calls (it synchronizes), as cudaFreeHost is."""
        self._ensure_context()
        if self._refused_in_capture():
            self._tick("cudaFree")
            return (E.cudaErrorStreamCaptureUnsupported,)
        if int(ptr) == 0:
            self._tick("cudaFree(0)")
            return (OK,)
        self.written.discard(int(ptr))
        return self._release("cudaFree", self.device_mem, ptr)

    def cudaFreeHost(self, ptr):
        if self._refused_in_capture():
            self._tick("cudaFreeHost")
            return (E.cudaErrorStreamCaptureUnsupported,)
        return self._release("cudaFreeHost", self.host_mem, ptr)

    def _device(self, ptr: int, size: int) -> tuple[bytearray, int] | None:
        for base, mem in self.device_mem.items():
            if base <= ptr and ptr + size <= base + len(mem):
                return mem, ptr - base
        return None

    def _read_device(self, ptr: int, size: int) -> bytes:
        """A kernel's read: counted when nothing was written there first (a warm-up on garbage)."""
        mem, off = self._device(ptr, size)
        self.uninitialised_reads += ptr - off not in self.written
        return bytes(mem[off:off + size])

    def _write_device(self, ptr: int, data: bytes) -> None:
        mem, off = self._device(ptr, len(data))
        mem[off:off + len(data)] = data
        self.written.add(ptr - off)

    def _host(self, ptr: int, size: int):
        import ctypes

        for base, buf in self.host_mem.items():
            if base <= ptr and ptr + size <= base + ctypes.sizeof(buf):
                return ptr
        return None

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        self._tick("cudaMemcpyAsync")
        dst, src = int(dst), int(src)
        if kind == KIND.cudaMemcpyHostToDevice:
            d, s = self._device(dst, count), self._host(src, count)
        elif kind == KIND.cudaMemcpyDeviceToHost:
            d, s = self._host(dst, count), self._device(src, count)
        else:
            d = s = None
        if d is None or s is None:  # the kind does not match the pointers: no host read of device memory
            return (E.cudaErrorInvalidValue,)
        self._queue(stream, ("copy", kind, dst, src, count))
        return (OK,)

    def read_device(self, ptr: int, size: int) -> bytes:
        """What a host read of device memory gets here: refused, as on a real GPU without unified memory."""
        raise PermissionError(f"host read of device memory at {ptr:#x}: only cudaMemcpy reaches it")

    # streams, events, graphs ---------------------------------------------------------------------
    def cudaStreamCreate(self):
        self._ensure_context()
        self._tick("cudaStreamCreate")
        h = self._handle()
        self.streams[h] = {"queue": [], "capture": None, "mode": None, "thread": None, "invalidated": False}
        return OK, real_rt.cudaStream_t(h)

    def cudaStreamDestroy(self, stream):
        return self._release("cudaStreamDestroy", self.streams, stream, E.cudaErrorInvalidResourceHandle)

    def _queue(self, stream, op) -> None:
        s = self.streams[int(stream)]
        if s["capture"] is not None:
            s["capture"].append(op)
        else:
            s["queue"].append((self.host_now, op))

    def cudaEventCreate(self):
        self._ensure_context()
        self._tick("cudaEventCreate")
        h = self._handle()
        self.events[h] = {"t": None, "pending": False}
        return OK, real_rt.cudaEvent_t(h)

    def cudaEventDestroy(self, event):
        return self._release("cudaEventDestroy", self.events, event, E.cudaErrorInvalidResourceHandle)

    def cudaEventRecord(self, event, stream):
        self._tick("cudaEventRecord")
        self.events[int(event)]["pending"] = True
        self._queue(stream, ("event", int(event)))
        return (OK,)

    def _run(self, stream) -> None:
        """Execute what the stream holds, in order, on the device timeline."""
        s = self.streams[int(stream)]
        for queued_at, op in s["queue"]:
            start = max(self.device_free, queued_at)
            if op[0] == "copy":
                _, kind, dst, src, count = op
                self._do_copy(kind, dst, src, count)
                self.device_free = start + count / (self.gb_s * 1e6)
            elif op[0] == "kernel":
                self._kernel(op, start)
            elif op[0] == "graph":  # its kernels back to back, from the launch on
                for inner in op[1]:
                    if inner[0] == "kernel":
                        self._kernel(inner, max(self.device_free, start))
                    elif inner[0] == "copy":
                        self._do_copy(*inner[1:])
            elif op[0] == "event":
                self.events[op[1]].update(t=max(self.device_free, queued_at), pending=False)
        s["queue"] = []

    def _kernel(self, op, start: float) -> None:
        """("kernel", work or None, ms): the work (an enqueue's last launch runs the graph) and its device time."""
        if op[1] is not None:
            op[1]()
        self.device_free = start + op[2] * self._clock_x(op[2])

    def _clock_x(self, ms: float) -> float:
        """How much slower than boosted the GPU runs `ms` of work now: NVIDIA's GPUs sit at idle clocks with no
        work and boost when work starts, so after `idle_s` of real time without any, the next `ramp_ms` run slow."""
        if self.idle_s is None:
            return 1.0
        now = time.perf_counter()
        if now - self.last_busy > self.idle_s:
            self.ramp_left = self.ramp_ms
        self.last_busy = now
        if self.ramp_left <= 0:
            return 1.0
        self.ramp_left -= ms
        return self.cool_x

    def _do_copy(self, kind, dst, src, count) -> None:
        import ctypes

        if kind == KIND.cudaMemcpyHostToDevice:
            self._write_device(dst, ctypes.string_at(src, count))
        else:
            mem, off = self._device(src, count)
            ctypes.memmove(dst, bytes(mem[off:off + count]), count)

    def cudaStreamSynchronize(self, stream):
        self._tick("cudaStreamSynchronize")
        if self._refused_in_capture():
            return (E.cudaErrorStreamCaptureUnsupported,)
        self._run(stream)
        self.host_now = max(self.host_now, self.device_free)
        return (OK,)

    def cudaEventSynchronize(self, event):
        self._tick("cudaEventSynchronize")
        if self._refused_in_capture():
            return (E.cudaErrorStreamCaptureUnsupported,)
        for h in self.streams:
            self._run(h)
        self.host_now = max(self.host_now, self.events[int(event)]["t"] or 0)
        return (OK,)

    def cudaEventElapsedTime(self, start, end):
        self._tick("cudaEventElapsedTime")
        a, b = self.events[int(start)], self.events[int(end)]
        if a["pending"] or b["pending"] or a["t"] is None or b["t"] is None:
            return E.cudaErrorNotReady, 0.0
        return OK, b["t"] - a["t"]

    def cudaStreamBeginCapture(self, stream, mode):
        """Capture begins in `mode` (recorded), on this thread."""
        self._tick("cudaStreamBeginCapture")
        s = self.streams[int(stream)]
        if s["capture"] is not None:
            return (E.cudaErrorIllegalState,)
        s.update(capture=[], mode=MODE(int(mode)), thread=threading.get_ident(), invalidated=False)
        self.capture_modes.append(MODE(int(mode)))
        return (OK,)

    def cudaStreamIsCapturing(self, stream):
        active = self.streams[int(stream)]["capture"] is not None
        return OK, real_rt.cudaStreamCaptureStatus(int(active))

    def cudaStreamEndCapture(self, stream):
        """The stream leaves capture mode; an invalidated capture gives an error and no graph. A capture not begun
        Relaxed is ended only by the thread that began it (cudaErrorStreamCaptureWrongThread, still capturing)."""
        self._tick("cudaStreamEndCapture")
        s = self.streams[int(stream)]
        if s["capture"] is None:
            return E.cudaErrorIllegalState, None
        if s["mode"] != MODE.cudaStreamCaptureModeRelaxed and s["thread"] != threading.get_ident():
            return E.cudaErrorStreamCaptureWrongThread, None
        ops, s["capture"] = s["capture"], None
        if s["invalidated"]:
            return E.cudaErrorStreamCaptureInvalidated, None
        h = self._handle()
        self.graphs[h] = ops
        return OK, real_rt.cudaGraph_t(h)

    def cudaGraphInstantiate(self, graph, flags):
        """Can fail (injected: `instantiate_fails`), with no graph exec, as the real call can."""
        self._tick("cudaGraphInstantiate")
        if "instantiate_fails" in self.faults:
            return E.cudaErrorNotSupported, None
        h = self._handle()
        self.execs[h] = list(self.graphs[int(graph)])
        return OK, real_rt.cudaGraphExec_t(h)

    def cudaGraphDestroy(self, graph):
        return self._release("cudaGraphDestroy", self.graphs, graph)

    def cudaGraphExecDestroy(self, graph_exec):
        return self._release("cudaGraphExecDestroy", self.execs, graph_exec)

    def cudaGraphLaunch(self, graph_exec, stream):
        self._tick("cudaGraphLaunch")
        if int(graph_exec) not in self.execs:
            return (E.cudaErrorInvalidValue,)
        self._queue(stream, ("graph", self.execs[int(graph_exec)]))
        return (OK,)


GRAPHS = real_trt.CudaGraphStrategy
SPECIALISE = real_trt.DynamicShapesKernelSpecializationStrategy


class FakeTrt(types.ModuleType):
    """tensorrt_rtx (or, with name="tensorrt", TensorRT 10) for running plans: the real DataType /
    TensorIOMode enums, nptype; TensorRT-RTX adds its runtime-config enums, with their real values."""

    DataType = real_trt.DataType
    TensorIOMode = real_trt.TensorIOMode
    LayerInformationFormat = real_trt.LayerInformationFormat
    nptype = staticmethod(real_trt.nptype)

    def __init__(self, cuda: FakeCuda, version: str = real_trt.__version__, name: str = "tensorrt_rtx"):
        super().__init__(name)
        self.cuda, self.__version__, self.is_rtx = cuda, version, name == "tensorrt_rtx"
        if self.is_rtx:
            self.CudaGraphStrategy, self.DynamicShapesKernelSpecializationStrategy = GRAPHS, SPECIALISE

        outer = self

        class Runtime:
            def __init__(self, logger):
                self.logger = logger

            def deserialize_cuda_engine(self, plan):
                """None for what it cannot deserialize; the full TensorRT warns of a plan built on another GPU
                model (its own words), through the logger."""
                header = _header(plan)
                if header is None or "damaged_plan" in cuda.faults or (outer.is_rtx and _invalidity(cuda, header)):
                    return None
                cuda._ensure_context()  # TensorRT's CUDA calls make it where the caller has not
                if not outer.is_rtx and header.get("built_on") not in (None, cuda.gpu[0]):
                    self.logger.log(Logger.WARNING, ACROSS_DEVICES)
                try:
                    return FakeEngine(outer, header, plan[12 + int.from_bytes(plan[8:12], "little"):])
                except Exception:  # a truncated graph: TensorRT returns None
                    return None

        class RtxRuntime(Runtime):
            def get_engine_validity(self, buffer) -> tuple:
                """TensorRT-RTX: (EngineValidity, diagnostics bitmask) from the header alone: INVALID with the
                EngineInvalidityDiagnostics bits that apply, SUBOPTIMAL where the plan says so, else VALID."""
                header = _header(bytes(buffer))
                bits = DIAGNOSTICS.MALFORMED_ENGINE if header is None else _invalidity(cuda, header)
                if bits:
                    return real_trt.EngineValidity.INVALID, int(bits)
                validity = real_trt.EngineValidity
                return (validity.SUBOPTIMAL if header["suboptimal"] else validity.VALID), 0

        if self.is_rtx:
            self.EngineValidity, self.EngineInvalidityDiagnostics = real_trt.EngineValidity, DIAGNOSTICS
        self.Logger, self.Runtime = Logger, RtxRuntime if self.is_rtx else Runtime


DIAGNOSTICS = real_trt.EngineInvalidityDiagnostics
ACROSS_DEVICES = ("Using an engine plan file across different models of devices is not supported and is likely to "
                  "affect performance or even cause errors or deadlock.")


class Logger:
    """trt.Logger: the real severities (INTERNAL_ERROR 0 .. VERBOSE 4, WARNING by default); a message is written
    to stderr, as the real default logger does, only at or above its min_severity."""

    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (real_trt.Logger.Severity.__members__[n] for n in
                                                     ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"))

    def __init__(self, min_severity=real_trt.Logger.Severity.WARNING):
        self.min_severity = min_severity

    def log(self, severity, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            print(f"[TRT] [{severity.name[0]}] {msg}", file=sys.stderr)


def _header(plan: bytes) -> dict | None:
    """A stand-in plan's header, or None for anything else."""
    if not plan.startswith(b"FAKEPLAN"):
        return None
    n = int.from_bytes(plan[8:12], "little")
    try:
        return json.loads(plan[12:12 + n])
    except ValueError:
        return None


def _invalidity(cuda: FakeCuda, header: dict) -> int:
    """The diagnostics bits of what keeps the plan from running on this GPU: an older driver than it needs, less
    free device memory than it needs."""
    bits = int(DIAGNOSTICS.OLD_CUDA_DRIVER) if cuda.driver < header.get("min_driver", 0) else 0
    return bits | (int(DIAGNOSTICS.INSUFFICIENT_GPU_MEMORY) if cuda.memory_mb < header.get("device_mb", 0) else 0)


class FakeEngine:
    def __init__(self, trt: FakeTrt, header: dict, onnx_bytes: bytes):
        self.trt, self.cuda = trt, trt.cuda
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.dynamic = header["dynamic"]
        self.io = {}
        for t, mode in [(i, real_trt.TensorIOMode.INPUT) for i in self.session.get_inputs()] + \
                       [(o, real_trt.TensorIOMode.OUTPUT) for o in self.session.get_outputs()]:
            shape = [d if isinstance(d, int) and not self.dynamic else -1 for d in t.shape]
            if self.dynamic:
                shape[1] = t.shape[1]
            self.io[t.name] = (mode, tuple(shape), getattr(real_trt.DataType, header["io"].get(t.name, "FLOAT")))
        self.profile = self._profile(header.get("profile")) if self.dynamic else {}
        self.unknown_names: list[str] = []  # names asked of get_tensor_shape that the engine does not have
        self.user_allocation = header.get("user_allocation", False)  # BuilderFlag.REQUIRE_USER_ALLOCATION
        self.verbosity = header.get("verbosity", "LAYER_NAMES_ONLY")  # ProfilingVerbosity; TensorRT's default
        self.int8_kernels = header.get("int8_kernels", True)
        self.onnx_bytes = onnx_bytes

    def _profile(self, lq: list | None) -> dict[str, list[tuple]]:
        """min/opt/max per input; by default engines/build.py's: (1, 32, 32), (1, H, W), (4, 2H, 2W) from the
        graph's image_size (256x256 without one)."""
        if lq is None:
            h, w = map(int, self.session.get_modelmeta().custom_metadata_map.get("image_size", "256x256").split("x"))
            lq = [(1, 32, 32), (1, h, w), (4, 2 * h, 2 * w)]
        inputs = {n: s for n, (m, s, _) in self.io.items() if m == real_trt.TensorIOMode.INPUT}
        return {n: [(b, s[1], h // (1 if n == "lq" else 8), w // (1 if n == "lq" else 8)) for b, h, w in lq]
                for n, s in inputs.items()}

    @property
    def num_io_tensors(self):
        return len(self.io)

    def get_tensor_name(self, i):
        return list(self.io)[i]

    def get_tensor_mode(self, name):
        return self.io[name][0]

    def get_tensor_shape(self, name):
        """An unknown name gives TensorRT's Dims{-1, {}} (no dimensions here), and is recorded."""
        if name not in self.io:
            self.unknown_names.append(name)
            return ()
        return self.io[name][1]

    def get_tensor_dtype(self, name):
        return self.io[name][2]

    def get_tensor_profile_shape(self, name, profile_index):
        """[min, opt, max] of an input in profile 0, the only one elir-edge builds."""
        return list(self.profile[name]) if profile_index == 0 and name in self.profile else []

    def accepts(self, name: str, shape: tuple) -> bool:
        """An input shape TensorRT takes: the static shape, or within the profile's min..max in every dim."""
        mode, static, _ = self.io.get(name, (None, (), None))
        if mode != real_trt.TensorIOMode.INPUT or len(shape) != len(static):
            return False
        if not self.dynamic:
            return shape == static
        lo, _, hi = self.profile[name]
        return all(a <= d <= b for a, d, b in zip(lo, shape, hi))

    def create_runtime_config(self):
        return FakeRuntimeConfig(self.trt)

    def create_engine_inspector(self):
        return FakeInspector(self)

    def create_execution_context(self, runtime_config=None):
        """Without a runtime config, TensorRT-RTX's defaults: LAZY specialisation, no CUDA graphs."""
        if "no_context" in self.cuda.faults:
            return None
        kind = FakeRtxContext if self.trt.is_rtx else FakeContext
        return kind(self, runtime_config or FakeRuntimeConfig(self.trt))


class FakeInspector:
    """IEngineInspector: the plan's layers as its ProfilingVerbosity and the inspected context allow."""

    LAYER_TYPES = {"Conv": "CaskConvolution", "ConvTranspose": "CaskDeconvolution", "Identity": "NoOp"}
    FORMATS = {"INT8": ("Int8", "Thirty-two wide channel vectorized row major Int8 format"),
               "FP16": ("Half", "Channel major FP16 format where channel % 8 == 0"),
               "FP32": ("Float", "Row major linear FP32 format")}

    def __init__(self, engine: FakeEngine):
        self.engine, self.execution_context = engine, None

    def get_engine_information(self, fmt) -> str:
        if fmt != real_trt.LayerInformationFormat.JSON:
            return "\n".join(n for n, _ in self._nodes())  # ONELINE: one line a layer, not JSON
        if self.engine.verbosity == "NONE":
            return json.dumps({"Layers": []})
        if self.engine.verbosity != "DETAILED":
            return json.dumps({"Layers": [n for n, _ in self._nodes()]})
        types_ = self._types()
        return json.dumps({"Layers": [self._layer(name, node, types_) for name, node in self._nodes()]})

    def _nodes(self) -> list:
        """The graph's nodes as TensorRT's layers: Q/DQ pairs are fused into the layers they feed."""
        import onnx

        graph = onnx.load_from_string(self.engine.onnx_bytes).graph
        return [(n.name or f"{n.op_type}_{i}", n) for i, n in enumerate(graph.node)
                if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]

    def _types(self) -> dict[str, str]:
        """Each tensor's float type; an input fed by a DequantizeLinear is its int8 tensor."""
        import onnx

        model = onnx.shape_inference.infer_shapes(onnx.load_from_string(self.engine.onnx_bytes))
        g = model.graph
        types_ = {v.name: ("FP16" if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else "FP32")
                  for v in [*g.input, *g.value_info, *g.output]}
        for n in g.node:
            if n.op_type == "DequantizeLinear":
                types_[n.output[0]] = "INT8"
        return types_

    def _resolved(self) -> bool:
        """Concrete dimensions and formats: a static engine, or a context with every input shape set."""
        ctx = self.execution_context
        return not self.engine.dynamic or (ctx is not None and all(
            d >= 0 for n, (m, _, _) in self.engine.io.items() if m == real_trt.TensorIOMode.INPUT
            for d in ctx.shapes[n]))

    def _tensor(self, t: str, dt: str, resolved: bool) -> dict:
        """TensorRT 10: one "Format/Datatype", withheld whole until the shapes are known ("N/A due to dynamic
        shapes", as NVIDIA's examples show); TensorRT-RTX (11's schema): "Datatype" and "Format", only the
        format withheld (its library's text: "Format not available due to dynamic shapes")."""
        short, long = self.FORMATS[dt]
        if self.engine.trt.is_rtx:
            return {"Name": t, "Datatype": short, "Format": long if resolved else
                    "Format not available due to dynamic shapes"}
        return {"Name": t, "Format/Datatype": long if resolved else "N/A due to dynamic shapes"}

    def _layer(self, name: str, node, types_: dict[str, str]) -> dict:
        """TensorRT 10: Cask layers with a ParameterType; TensorRT-RTX: Myelin-style "kgen" layers that name
        only their ONNX node (its library holds no "CaskConvolution"), the hardest case for a reader."""
        rtx, resolved = self.engine.trt.is_rtx, self._resolved()
        kind = "kgen" if rtx and node.op_type != "Identity" else self.LAYER_TYPES.get(node.op_type, "PointWiseV2")
        conv = node.op_type in ("Conv", "ConvTranspose")

        def dtype(t: str) -> str:
            dt = types_.get(t, "FP32")
            return "FP16" if dt == "INT8" and not (self.engine.int8_kernels and conv) else dt  # float fallback

        layer = {"Name": name, "LayerType": kind,
                 "Inputs": [self._tensor(t, dtype(t), resolved) for t in node.input[:1]],
                 "Outputs": [self._tensor(t, dtype(t), resolved) for t in node.output],
                 "Metadata": f"[ONNX Layer: {name}]"}
        if conv and not rtx:
            layer["ParameterType"] = "Convolution" if node.op_type == "Conv" else "Deconvolution"
        return layer


class FakeRuntimeConfig:
    """IRuntimeConfig: TensorRT-RTX's defaults until set, and the runtime cache it is given."""

    def __init__(self, trt: FakeTrt):
        self.trt, self.cache, self._graphs = trt, None, GRAPHS.DISABLED
        self.dynamic_shapes_kernel_specialization_strategy = SPECIALISE.LAZY

    @property
    def cuda_graph_strategy(self):
        return self._graphs

    @cuda_graph_strategy.setter
    def cuda_graph_strategy(self, strategy):
        """C++ setCudaGraphStrategy answers a bool the Python property drops: a refused strategy (injected:
        `graph_strategy_refused`) leaves the old one, which only reading it back shows."""
        if "graph_strategy_refused" not in self.trt.cuda.faults:
            self._graphs = strategy

    def create_runtime_cache(self):
        return FakeRuntimeCache(self.trt)

    def set_runtime_cache(self, cache):
        """False where TensorRT-RTX does not take the cache (injected: `set_cache_refused`), as the real bool."""
        if "set_cache_refused" in self.trt.cuda.faults:
            return False
        self.cache = cache
        return True

    def get_runtime_cache(self):
        return self.cache


class FakeRuntimeCache:
    """IRuntimeCache: the shapes the JIT compiled (shape -> host time the kernels are ready), serialized
    with the GPU and TensorRT-RTX version it was made with; another's is refused (False), as NVIDIA's
    deserialize validates the environment first."""

    def __init__(self, trt: FakeTrt):
        self.trt, self.entries = trt, {}

    def _made_on(self) -> dict:
        return {"gpu": list(self.trt.cuda.gpu), "tensorrt_rtx": self.trt.__version__}

    def serialize(self) -> bytes | None:
        """None where TensorRT-RTX cannot serialize it (injected: `cache_serialize_fails`), as apiUsage checks."""
        if "cache_serialize_fails" in self.trt.cuda.faults:
            return None
        return b"FAKERTC" + json.dumps({**self._made_on(), "shapes": [list(s) for s in self.entries]}).encode()

    def deserialize(self, blob) -> bool:
        """False without a current CUDA context too ("A current CUDA context must be present", its docstring)."""
        if not self.trt.cuda.context:
            return False
        blob = bytes(blob)
        try:
            data = json.loads(blob[7:]) if blob.startswith(b"FAKERTC") else {}
        except ValueError:
            data = {}
        if {k: data.get(k) for k in self._made_on()} != self._made_on():
            return False
        self.entries.update({tuple(s): float("-inf") for s in data["shapes"]})
        return True


class FakeContext:
    def __init__(self, engine: FakeEngine, config: FakeRuntimeConfig):
        self.engine, self.cuda, self.config = engine, engine.cuda, config
        self.addresses, self.shapes = {}, {n: s for n, (_, s, _) in engine.io.items()}
        self.deferred = True  # the first enqueue does TensorRT's deferred setup
        self.compiled: dict[tuple, float] = {}  # without a runtime cache: this context's JIT results
        self.graphs: dict[tuple, list] = {}  # WHOLE_GRAPH_CAPTURE: TensorRT-RTX's own graphs
        self.fallback_kernels = self.graph_launches = 0

    def get_runtime_config(self):
        return self.config

    def set_input_shape(self, name, shape):
        """False outside the profile (the real API's answer); a new shape defers work to the next enqueue."""
        shape = tuple(int(d) for d in shape)
        if not self.engine.accepts(name, shape):
            return False
        self.deferred |= shape != self.shapes[name]
        self.shapes[name] = shape
        if name == "lq":  # the output follows the input
            out = next(n for n, (m, _, _) in self.engine.io.items() if m == real_trt.TensorIOMode.OUTPUT)
            self.shapes[out] = (shape[0], 3, shape[2], shape[3])
        return True

    def get_tensor_shape(self, name):
        return self.shapes[name]

    def set_tensor_address(self, name, ptr):
        if "address_refused" in self.cuda.faults:
            return False
        self.addresses[name] = int(ptr)
        return True

    def _capturable(self) -> bool:
        """TensorRT-RTX: a stream capture, the user's or its own WHOLE_GRAPH_CAPTURE, needs an engine built with
        REQUIRE_USER_ALLOCATION ("ensures that inference will support graph capture", its docstring)."""
        return self.engine.user_allocation or not self.engine.trt.is_rtx

    def _refuses(self, stream) -> bool:
        """TensorRT's False: an address or an input shape missing; or, inside a user's capture (which it
        invalidates), TensorRT-RTX without REQUIRE_USER_ALLOCATION, or deferred work."""
        io = self.engine.io
        if any(n not in self.addresses for n in io) or any(
                d < 0 for n, (m, _, _) in io.items() if m == real_trt.TensorIOMode.INPUT for d in self.shapes[n]):
            return True
        s = self.cuda.streams[int(stream)]
        if s["capture"] is not None and (self.deferred or not self._capturable()):
            s["invalidated"] = True
            return True
        self.deferred = False
        return False

    def execute_async_v3(self, stream):
        """The enqueue: refused (False), a replay of TensorRT-RTX's own graph of this shape, or its launches
        (captured as that graph where the strategy is WHOLE_GRAPH_CAPTURE and the setup is done)."""
        cuda = self.cuda
        faulty = "enqueue_fails" in cuda.faults or ("enqueue_fails_in_capture" in cuda.faults and cuda._capturing())
        was_deferred = self.deferred
        if faulty or self._refuses(stream):
            cuda._tick("execute_async_v3", cuda.enqueue_ms)  # the host cost of an enqueue
            return False
        key = (tuple(sorted(self.shapes.items())), tuple(sorted(self.addresses.items())))
        if key in self.graphs:
            cuda._tick("execute_async_v3: graph launch")
            cuda._queue(stream, ("graph", self.graphs[key]))
            self.graph_launches += 1
            return True
        ops = self._launch(stream, self._kernel_ms())
        if self.config.cuda_graph_strategy == GRAPHS.WHOLE_GRAPH_CAPTURE and not was_deferred and self._capturable():
            self.graphs[key] = ops  # whatever kernels ran now, fallback ones too, are frozen in the graph
        return True

    def _kernel_ms(self) -> float:
        """Device time of this enqueue's kernels: `kernel_ms` once specialised; TensorRT-RTX runs a dynamic
        engine's new shape on fallback kernels (`fallback_x` slower) until its JIT compile is done: LAZY in
        the background for `jit_ms`, EAGER inside this enqueue (host time), NONE never."""
        cuda = self.cuda
        if not (self.engine.trt.is_rtx and self.engine.dynamic):
            return cuda.kernel_ms
        strategy, shape = self.config.dynamic_shapes_kernel_specialization_strategy, self.shapes["lq"]
        compiled = self.config.cache.entries if self.config.cache is not None else self.compiled
        if strategy != SPECIALISE.NONE and shape not in compiled:
            if strategy == SPECIALISE.EAGER:
                cuda._tick("JIT compile", cuda.jit_ms)
            compiled[shape] = cuda.host_now + (cuda.jit_ms if strategy == SPECIALISE.LAZY else 0)
        if strategy == SPECIALISE.NONE or cuda.host_now < compiled[shape]:
            self.fallback_kernels += 1
            return cuda.kernel_ms * cuda.fallback_x
        return cuda.kernel_ms

    def _launch(self, stream, ms: float) -> list:
        """The enqueue's host cost in `launches` steps, each launching its share of the kernels as it is made
        (the last one computes the output), so the GPU starts while the host is still enqueueing."""
        cuda, n = self.cuda, self.cuda.launches
        ops = []
        for i in range(n):
            cuda._tick("execute_async_v3" if i == 0 else "kernel launch", cuda.enqueue_ms / n)
            ops.append(("kernel", self._work() if i == n - 1 else None, ms / n))
            cuda._queue(stream, ops[-1])
        return ops

    def _work(self):
        """The engine's computation at the current addresses and shapes, run when the GPU reaches it."""
        cuda, addresses, shapes, io = self.cuda, dict(self.addresses), dict(self.shapes), self.engine.io

        def kernel():
            feeds = {}
            for name, (mode, _, dt) in io.items():
                if mode == real_trt.TensorIOMode.INPUT:
                    size = int(np.prod(shapes[name])) * np.dtype(_np(dt)).itemsize
                    feeds[name] = _to_float(np.frombuffer(cuda._read_device(addresses[name], size), _np(dt)), dt) \
                        .reshape(shapes[name])
            out_name = next(n for n, (m, _, _) in io.items() if m == real_trt.TensorIOMode.OUTPUT)
            result = _from_float(self.engine.session.run(None, feeds)[0], io[out_name][2])
            cuda._write_device(addresses[out_name], result.tobytes())

        return kernel


class FakeRtxContext(FakeContext):
    """TensorRT-RTX's context: it alone has is_stream_capturable (TensorRT 11.1's Python bindings have none)."""

    def is_stream_capturable(self, stream) -> bool:
        return self._capturable()


def _np(dt):
    """numpy storage of a TensorRT DataType; bf16 is its 2-byte bit pattern, as on the GPU."""
    return {"HALF": np.float16, "BF16": np.uint16, "INT8": np.int8, "BOOL": np.bool_}.get(dt.name, np.float32)


def _to_float(x: np.ndarray, dt) -> np.ndarray:
    if dt.name == "BF16":
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32)


def _from_float(x: np.ndarray, dt) -> np.ndarray:
    if dt.name == "BF16":  # round to nearest even, then keep the top 16 bits
        bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
        return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return x.astype(_np(dt))


def full_tensorrt(cuda: FakeCuda, version: str = "10.8.0") -> FakeTrt:
    """TensorRT 10 for running plans: no runtime-config strategies, no JIT; a user's capture is allowed
    (after the enqueue that does the deferred work)."""
    return FakeTrt(cuda, version, name="tensorrt")


def install(monkeypatch, **kw) -> tuple[FakeCuda, FakeTrt]:
    """Put the stand-ins where the runtime imports them: cuda.bindings.runtime and tensorrt_rtx (and
    tensorrt, for TensorRT engines)."""
    from elir_edge.runtime import cuda as cuda_module

    fake = FakeCuda(**kw)
    trt = FakeTrt(fake)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime, bindings.__version__ = fake, "13.5.0"
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", fake)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", trt)
    if hasattr(cuda_module.gpu_info, "cache_clear"):  # not yet installed in this test: the probe asks each time
        cuda_module.gpu_info.cache_clear()
        monkeypatch.setattr(cuda_module, "gpu_info", cuda_module.gpu_info.__wrapped__)
    return fake, trt


def fake_tensorrt_builder(version: str, fp16_flag: bool, cache_fits: bool = True,
                          unreadable_caches: tuple[bytes, ...] = (),
                          refused_sms: tuple[str, ...] = ()) -> types.ModuleType:
    """`tensorrt` for building, as TensorRT `version` has it, with its real enum values: STRONGLY_TYPED is 1
    in TensorRT 10 (EXPLICIT_BATCH 0, NvInfer.h) and in 11 the value the installed tensorrt_rtx, which shares
    11's API, has (0); BuilderFlag FP16 0 and TF32 7 in 10, TF32 as tensorrt_rtx has it in 11; the FP16
    flag only where `fp16_flag`. A timing cache may not fit this GPU (`cache_fits`), and
    `create_timing_cache` returns None for the `unreadable_caches` blobs, as the real one can. It records
    the network flags and the builder flags it was given and cleared. As tensorrt_rtx it takes compute
    capabilities: `set_compute_capability` answers False (its documented "false otherwise") for kNONE, an index
    outside `num_compute_capabilities`, or one of `refused_sms`."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.seen = {"network_flags": None, "builder_flags": set(), "cleared_flags": set(), "cache_set": []}
    if version.startswith("10."):
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
        tf32 = 7
    else:
        trt.NetworkDefinitionCreationFlag = real_trt.NetworkDefinitionCreationFlag
        tf32 = int(real_trt.BuilderFlag.TF32)
    rtx_flags = {} if version.startswith("10.") else \
        {"REQUIRE_USER_ALLOCATION": int(real_trt.BuilderFlag.REQUIRE_USER_ALLOCATION)}
    trt.BuilderFlag = types.SimpleNamespace(**({"FP16": 0} if fp16_flag else {}), TF32=tf32, **rtx_flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.ProfilingVerbosity = real_trt.ProfilingVerbosity
    trt.ComputeCapability = real_trt.ComputeCapability

    class Network:
        num_layers = 3

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            trt.seen["network_flags"] = flags
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.seen["verbosity"] = getattr(config, "profiling_verbosity", real_trt.ProfilingVerbosity.LAYER_NAMES_ONLY)
            return b"tensorrt plan"

    class Config:
        cache = None
        num_compute_capabilities = 0

        def set_compute_capability(self, cc, index):
            refused = cc == real_trt.ComputeCapability.NONE or cc.name.removeprefix("SM") in refused_sms
            if refused or not 0 <= index < self.num_compute_capabilities:
                return False
            trt.seen.setdefault("sms", {})[index] = cc.name
            return True

        def set_memory_pool_limit(self, *a):
            pass

        def set_flag(self, flag):
            trt.seen["builder_flags"].add(flag)

        def clear_flag(self, flag):
            trt.seen["builder_flags"].discard(flag)
            trt.seen["cleared_flags"].add(flag)

        def create_timing_cache(self, data):
            if bytes(data) in unreadable_caches:
                return None
            return types.SimpleNamespace(data=data, serialize=lambda: b"cache for this GPU")

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache is None:  # pybind11 refuses None for the ITimingCache reference
                raise TypeError("set_timing_cache(): incompatible function arguments")
            trt.seen["cache_set"].append(cache.data)
            fits = cache_fits or cache.data == b""
            if fits:
                self.cache = cache
            return fits

        def get_timing_cache(self):
            return self.cache

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return True

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt
