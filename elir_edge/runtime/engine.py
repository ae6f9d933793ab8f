"""A serialized NVIDIA engine as a runner, the same for TensorRT and TensorRT-RTX (one Python API): pinned
and device buffers per I/O tensor, one stream, `execute_async_v3`, optional CUDA-graph replay, and
CUDA-event timing taken apart the way trtexec reports it.

Timing of one `timed` call: host->device copies, the enqueue (its host cost measured on its own), the
compute, device->host copies, each between its own events. The compute figure comes from a second
enqueue queued behind the first, so the GPU is already busy when it is enqueued: a GPU idling while the
host enqueues is not counted as compute (it is in `end_to_end_ms`, as a caller would see it).

A dynamic engine is fed at most its optimization profile's max batch at once. A new shape is run once on
the real inputs before it is timed or captured, and a CUDA graph that cannot be captured is dropped with a
warning, as trtexec does. TensorRT-RTX gets a runtime config (runtime_config.py): EAGER kernel
specialisation, its own CUDA graphs (WHOLE_GRAPH_CAPTURE) instead of ours, a runtime cache beside the engine.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from elir_edge.errors import UserError
from elir_edge.runtime import cuda, runtime_config
from elir_edge.runtime.batching import in_batches
from elir_edge.runtime.interface import LATENT_CHANNELS
from elir_edge.runtime.layer_precision import LayerPrecisions, read_inspector, unreadable
from elir_edge.runtime.runner import Interface, Runner

# TensorRT DataType name -> numpy storage. bfloat16 has no numpy type: stored as its 16 raw bits.
DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "BF16": np.uint16, "INT8": np.int8, "UINT8": np.uint8,
          "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


class EngineError(UserError):
    """The engine cannot run here as it is (damaged, wrong GPU, failed call): one line, never a crash."""


# TensorRT-RTX's EngineInvalidityDiagnostics bits -> the fix (NVIDIA's apiUsage sample names each bit)
INVALIDITY_FIXES = {"VERSION_MISMATCH": "rebuild it with this TensorRT-RTX (`elir-edge build`)",
                    "UNSUPPORTED_CC": "rebuild it for this GPU (`elir-edge build --sm`)",
                    "OLD_CUDA_DRIVER": "update the NVIDIA driver", "OLD_CUDA_RUNTIME": "update the CUDA runtime",
                    "INSUFFICIENT_GPU_MEMORY": "free GPU memory (other processes) or use a GPU with more",
                    "MALFORMED_ENGINE": "build it again with `elir-edge build`",
                    "CUDA_ERROR": "check the GPU and its driver (nvidia-smi)"}


def validity_flag(trt, runtime, plan: bytes, path: Path) -> str | None:
    """TensorRT-RTX's own verdict on the plan's header, asked before deserializing (as NVIDIA's apiUsage
    sample does): INVALID is an error naming its reasons; SUBOPTIMAL runs, and the row is flagged with it."""
    if not hasattr(runtime, "get_engine_validity"):
        return None
    validity, diagnostics = runtime.get_engine_validity(plan)
    if validity == trt.EngineValidity.SUBOPTIMAL:
        return "TensorRT-RTX rates this engine SUBOPTIMAL on this GPU (it runs, recompilation recommended): " \
               "rebuild it with `elir-edge build`"
    if validity != trt.EngineValidity.INVALID:
        return None
    reasons = [n for n, bit in trt.EngineInvalidityDiagnostics.__members__.items() if int(diagnostics) & int(bit)]
    said = ", ".join(reasons) or "INVALID, no reason given"
    fixes = "; ".join(INVALIDITY_FIXES.get(r, "rebuild it with `elir-edge build`") for r in reasons)
    raise EngineError(f"{path}: TensorRT-RTX says this engine cannot run here ({said}): "
                      f"{fixes or 'rebuild it on this machine with `elir-edge build`'}")


def _to_bf16(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


def _from_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


class EngineRunner(Runner):
    """`runner(lq, eps) -> hq` on an engine; `timed(lq, eps)` adds the CUDA-event breakdown; `close()`
    gives back every CUDA resource (and the runner refuses to run afterwards)."""

    def __init__(self, trt, plan: bytes, path: Path, kind: str, cuda_graph: bool = False,
                 meta: dict[str, str] | None = None):
        """`meta`: elir-edge's metadata of the ONNX the engine was built from (its task, arch, int8 form)."""
        self.trt, self.path, self.name, self.on_gpu = trt, Path(path), Path(path).name, True
        self.kind = kind + (" + CUDA graph" if cuda_graph else "")
        self.rt = cuda.bindings()
        self.context_ms = cuda.make_context(self.rt)  # the first engine's: not TensorRT-RTX's JIT
        t0 = time.perf_counter()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # TensorRT's warnings reach the user (other GPU model)
        self.flag = validity_flag(trt, runtime, plan, self.path)
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineError(f"{path} cannot be deserialized (damaged, truncated, or built by another "
                              "version or for another GPU): build it again with `elir-edge build`")
        self.setup = runtime_config.configure(trt, self.engine, cuda_graph, self.path)
        self.context = self.engine.create_execution_context() if self.setup.config is None else \
            self.engine.create_execution_context(runtime_config=self.setup.config)
        if self.context is None:
            raise EngineError(f"{path}: TensorRT could not create an execution context (GPU memory full?): "
                              "free GPU memory or use a smaller batch")
        self.load_ms = (time.perf_counter() - t0) * 1000  # TensorRT-RTX: its JIT compile happens here
        self.cuda_graph, self.first_run_ms, self.closed, self.warm = cuda_graph, None, False, False
        self.stream = cuda.Stream(self.rt)
        self.buffers: dict[str, cuda.Buffer] = {}
        try:
            self._open(meta)
            self._confirm_graph()
        except BaseException:  # noqa: BLE001 - re-raised: what was made so far is given back first
            self._free()
            raise

    def _open(self, meta: dict[str, str] | None) -> None:
        """The I/O tensors, the interface, the buffers of a static engine and the timing events."""
        self._read_io()
        lq_shape = tuple(self.engine.get_tensor_shape("lq"))
        self.dynamic = any(d < 0 for d in lq_shape)
        needs_eps = "eps" in self.modes
        latent = tuple(self.engine.get_tensor_shape("eps"))[1] if needs_eps else LATENT_CHANNELS
        n, _, h, w = (None if d < 0 else d for d in lq_shape)
        self.interface = Interface(dict(meta or {}), h, w, n, latent, needs_eps)
        self.max_batch = int(self.engine.get_tensor_profile_shape("lq", 0)[2][0]) if self.dynamic else n
        self.shape = None
        if not self.dynamic:
            self._bind(lq_shape)
        self.events = [self.stream.event() for _ in range(6)]

    def _read_io(self) -> None:
        """Each tensor's mode and dtype; refused unless it is an elir-edge graph's (lq [+ eps] -> one output)."""
        path, trt = self.path, self.trt
        self.modes, self.dtypes = {}, {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            self.modes[name] = "input" if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
            dt = self.engine.get_tensor_dtype(name)
            dt_name = getattr(dt, "name", str(dt).split(".")[-1])
            if dt_name not in DTYPES:
                raise EngineError(f"{path}: {self.modes[name]} {name} is {dt_name}, which elir-edge cannot feed "
                                  "or read: export with float32/float16 inputs and outputs")
            self.dtypes[name] = dt_name
        outputs = [n for n, m in self.modes.items() if m == "output"]
        if "lq" not in self.modes or len(outputs) != 1:
            raise EngineError(f"{path} is not an elir-edge engine (tensors {sorted(self.modes)}): build it from a "
                              "graph written by `elir-edge export` or `quantize`")
        self.output = outputs[0]

    # buffers -------------------------------------------------------------------------------------
    def _bind(self, lq_shape: tuple) -> None:
        """Buffers for one input shape (a dynamic engine is told the shape first; outputs follow from it). Until
        it succeeds no shape is bound, and the graph of the old buffers is gone."""
        self.shape = None
        if self.dynamic:
            n, _, h, w = lq_shape
            shapes = {"lq": lq_shape, "eps": (n, self.interface.latent_channels, h // 8, w // 8)}
            for name in (n for n, m in self.modes.items() if m == "input"):
                if not self.context.set_input_shape(name, shapes[name]):
                    lo, _, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape(name, 0))
                    raise EngineError(f"{self.path}: input {name} of shape {shapes[name]} is outside the engine's "
                                      f"optimization profile (min {lo}, max {hi}): give inputs within it or "
                                      "rebuild the engine with a wider --profile")
        self.stream.drop_graph()
        self._free_buffers()
        self.warm = False
        for name, mode in self.modes.items():
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineError(f"{self.path}: {mode} {name} has an unresolved shape {shape}")
            self.buffers[name] = buf = cuda.Buffer(self.rt, shape, DTYPES[self.dtypes[name]])
            if not self.context.set_tensor_address(name, int(buf.device)):
                raise EngineError(f"{self.path}: TensorRT refused the address of {mode} {name}")
        self.shape = tuple(lq_shape)

    def _load(self, lq: np.ndarray, eps: np.ndarray | None) -> None:
        if self.closed:
            raise EngineError(f"{self.path}: the runner was closed; open the engine again")
        if self.shape != tuple(lq.shape):
            if not self.dynamic:
                raise EngineError(f"{self.path} takes {self.shape}, given {tuple(lq.shape)}")
            self._bind(tuple(lq.shape))
        for name, value in (("lq", lq), ("eps", eps)):
            if name in self.buffers:
                host = self.buffers[name].host
                host[...] = _to_bf16(value) if self.dtypes[name] == "BF16" else value

    def _result(self) -> np.ndarray:
        out = self.buffers[self.output].host
        return _from_bf16(out) if self.dtypes[self.output] == "BF16" else out.astype(np.float32)

    # work on the stream --------------------------------------------------------------------------
    def _enqueue(self) -> None:
        if self.stream.graph_exec is not None:
            self.stream.launch_graph()
        elif not self.context.execute_async_v3(int(self.stream.handle)):
            raise EngineError(f"TensorRT failed to enqueue {self.path}")

    def _ready(self) -> None:
        """A new shape runs once, on the real inputs, before it is timed or captured: TensorRT does deferred
        work (allocation, shape updates) in the first enqueue after a shape change, which a capture cannot
        hold (trtexec: copy inputs, enqueue, synchronize, then capture). The first of all is `first_run_ms`."""
        if not self.warm:
            t0 = time.perf_counter()
            self._copy_in()
            self._enqueue()
            self.stream.synchronize()
            self.warm = True
            if self.first_run_ms is None:
                self.first_run_ms = (time.perf_counter() - t0) * 1000
        if self.cuda_graph and not self.setup.graph_by_tensorrt and self.stream.graph_exec is None:
            self._capture()

    def _confirm_graph(self) -> None:
        """TensorRT-RTX makes the CUDA graph only where it took WHOLE_GRAPH_CAPTURE and the context can be
        captured (an engine built with REQUIRE_USER_ALLOCATION); otherwise the row must not say CUDA graph."""
        if not (self.cuda_graph and hasattr(self.trt, "CudaGraphStrategy")):
            return
        if not self.setup.graph_by_tensorrt:
            self._no_graph("TensorRT-RTX did not take cuda_graph_strategy = WHOLE_GRAPH_CAPTURE")
        elif not self.context.is_stream_capturable(int(self.stream.handle)):
            self._no_graph("TensorRT-RTX cannot capture it (is_stream_capturable() is False: built without "
                           "REQUIRE_USER_ALLOCATION; rebuild it with `elir-edge build`)")

    def _no_graph(self, why: str) -> None:
        """Run without a CUDA graph, said in one warning, and the row's kind no longer says CUDA graph."""
        self.cuda_graph = False
        self.kind = self.kind.removesuffix(" + CUDA graph")
        warnings.warn(f"{self.path}: {why}: running without a CUDA graph", stacklevel=4)

    def _capture(self) -> None:
        """One enqueue as a CUDA graph, where the context says it can be captured (TensorRT-RTX: only an
        engine built with REQUIRE_USER_ALLOCATION); an engine that cannot be captured runs without one, with
        a one-line warning, as trtexec does (its kind then no longer says CUDA graph)."""
        capturable = getattr(self.context, "is_stream_capturable", None)
        try:
            if capturable is not None and not capturable(int(self.stream.handle)):
                raise EngineError("is_stream_capturable() is False: TensorRT-RTX captures only engines built "
                                  "with REQUIRE_USER_ALLOCATION")
            self.stream.capture(self._enqueue)
        except (EngineError, cuda.CudaError) as e:
            self._no_graph(f"CUDA graph capture failed ({e})")

    def _copy_in(self) -> None:
        for name, b in self.buffers.items():
            if self.modes[name] == "input":
                b.to_device(self.stream.handle)

    def run_batch(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        self._load(lq, eps)
        self._ready()
        self._copy_in()
        self._enqueue()
        self.buffers[self.output].to_host(self.stream.handle)
        self.stream.synchronize()
        return self._result()

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        """All of `lq` in chunks of the engine's batch (a dynamic engine's: up to its profile's max)."""
        return in_batches(self.run_batch, self.interface.batch or min(len(lq), self.max_batch), lq, eps)

    def timed(self, lq: np.ndarray, eps: np.ndarray | None) -> dict:
        """One run of exactly one engine batch, with the CUDA-event breakdown (milliseconds):
        h2d, compute (GPU kept busy, enqueue gap excluded), d2h, end_to_end (copy in, enqueue, compute,
        copy out, as a caller sees it), enqueue (host time of the enqueue call), wall (host, whole run)."""
        s, (e0, e1, e2, e3, e4, e5) = self.stream, self.events
        self._load(lq, eps)
        self._ready()
        t0 = time.perf_counter()
        s.record(e0)
        self._copy_in()
        s.record(e1)
        enqueue_ms = cuda.host_ms(self._enqueue)
        s.record(e2)
        self.buffers[self.output].to_host(s.handle)
        s.record(e3)
        s.synchronize()
        wall_ms = (time.perf_counter() - t0) * 1000
        self._enqueue()  # keeps the GPU busy while the next enqueue is made
        s.record(e4)
        self._enqueue()
        s.record(e5)
        s.synchronize()
        return {"h2d_ms": s.elapsed_ms(e0, e1), "compute_ms": s.elapsed_ms(e4, e5), "d2h_ms": s.elapsed_ms(e2, e3),
                "end_to_end_ms": s.elapsed_ms(e0, e3), "enqueue_ms": enqueue_ms, "wall_ms": wall_ms}

    def layer_precisions(self) -> LayerPrecisions:
        """TensorRT's engine inspector on this engine and, once a shape is bound, on its context: a dynamic
        engine shows concrete dimensions and formats only with every input shape set (IEngineInspector).
        A failing inspector costs the report its layer counts, never the measured run."""
        if self.closed:
            raise EngineError(f"{self.path}: the runner was closed; open the engine again")
        try:
            inspector = self.engine.create_engine_inspector()
            if self.shape is not None:
                inspector.execution_context = self.context
            text = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        except Exception as e:  # noqa: BLE001 - NVIDIA's bindings raise what their C++ side throws
            return unreadable(f"{type(e).__name__}: {e}")
        return read_inspector(text)

    def close(self) -> None:
        """Give back buffers, CUDA graph, events and stream; the runner refuses to run afterwards."""
        if self.closed:
            return
        try:
            runtime_config.save_cache(self.setup)
        finally:  # a cache that cannot be saved must not keep the GPU's memory, stream and graph
            self._free()
            self.context = self.engine = None
            self.closed = True

    def _free_buffers(self) -> None:
        buffers, self.buffers = self.buffers, {}
        for b in buffers.values():
            b.free()

    def _free(self) -> None:
        """Buffers, then the stream with its graph and events (also what a failed open made so far)."""
        self._free_buffers()
        self.stream.close()
