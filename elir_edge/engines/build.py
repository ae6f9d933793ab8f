"""Stage 3, engines: one of our ONNX graphs -> a serialized NVIDIA engine and the manifest beside it.

NVIDIA's own ONNX parser and builder do the work; this module only drives them: parse from the file
(external weights found), an optimization profile for dynamic graphs, the target's settings (compute
capabilities for TensorRT-RTX, the local GPU for TensorRT), progress with elapsed time, and an atomic
write of the plan and of its manifest (builder and version, targets, ONNX hash, precision, layers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from elir_edge.common.files import atomic_files, sha256_file
from elir_edge.errors import UserError
from elir_edge.model.settings import SIZE_MULTIPLE, parse_image_size
from elir_edge.runtime.engine_manifest import manifest_path

TARGETS = ("rtx", "tensorrt")
TURING = ("75",)  # the RTX 2080 Ti of the paper's FPS figure: the default TensorRT-RTX target


@dataclass
class BuildOptions:
    target: str = "rtx"
    sms: list[str] = field(default_factory=lambda: list(TURING))  # rtx: compute capabilities
    output: Path | None = None  # default: beside the ONNX, named by target
    profile: tuple | None = None  # dynamic graphs: ((B,H,W) min, opt, max); default from the metadata
    workspace_gib: float = 2.0
    tf32: bool = True  # False clears the default TF32 flag (both targets): fp32 layers stay fp32 on Ampere and later


class BuildError(UserError):
    """NVIDIA's parser or builder refused the graph: a defect of the graph or of its export, never soft."""


class BuilderMissing(UserError):
    """The builder (tensorrt-rtx, or TensorRT and its GPU) is not on this machine: the caller may go on."""


def default_output(onnx_path: Path, target: str) -> Path:
    return Path(onnx_path).with_suffix(".rtx.engine" if target == "rtx" else ".trt")


def precision_of(model: onnx.ModelProto) -> str:
    """What the graph computes in, read off it (strongly typed builders take the ONNX's own types)."""
    ops = {n.op_type for n in model.graph.node}
    half = any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer) or any(
        a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for n in model.graph.node if n.op_type == "Cast"
        for a in n.attribute)
    floats = "fp16" if half else "fp32"
    return f"int8 + {floats}" if {"QuantizeLinear", "DequantizeLinear"} & ops else floats


def with_tf32(precision: str, tf32: bool, sms: list[str]) -> str:
    """TensorRT and TensorRT-RTX both keep BuilderFlag.TF32 set by default (tensorrt_rtx 1.7.1: "Enabled by
    default"), so fp32 layers may compute in TF32 on any target of SM80 (Ampere) or later unless it is cleared."""
    if precision.endswith("fp32") and tf32 and any(int(sm) >= 80 for sm in sms):
        return f"{precision} (TF32 allowed)"
    return precision


def _profile_shapes(model: onnx.ModelProto, profile: tuple | None) -> dict[str, tuple] | None:
    """min/opt/max shapes of every input of a dynamic graph; None for a static one."""
    inputs = {i.name: [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    if all(d > 0 for dims in inputs.values() for d in dims):
        return None
    if profile is None:
        meta = {p.key: p.value for p in model.metadata_props}
        h, w = parse_image_size(meta.get("image_size", "256x256"))
        profile = ((1, SIZE_MULTIPLE, SIZE_MULTIPLE), (1, h, w), (4, 2 * h, 2 * w))
    for b, h, w in profile:
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or b < 1:
            raise UserError(f"profile shape {b}x{h}x{w}: height and width must be multiples of {SIZE_MULTIPLE}, "
                            "batch >= 1")
    shapes = {}
    for name, dims in inputs.items():
        scale = 1 if name == "lq" else 8  # eps is at latent resolution
        shapes[name] = tuple((b, dims[1], h // scale, w // scale) for b, h, w in profile)
    return shapes


class _Progress:
    """A TensorRT IProgressMonitor: each of the builder's main phases with its time and the total elapsed
    (not when quiet), and the way Ctrl-C reaches a build running in C++: the next step is declined, the
    builder stops, and `build` raises KeyboardInterrupt."""

    @staticmethod
    def make(trt, stream, quiet: bool):
        if not hasattr(trt, "IProgressMonitor"):
            return None

        class Monitor(trt.IProgressMonitor):
            def __init__(self):
                trt.IProgressMonitor.__init__(self)
                self.t0, self.started, self.interrupted = time.perf_counter(), {}, False

            def phase_start(self, phase, parent, steps):
                self.started[phase] = (time.perf_counter(), parent)

            def step_complete(self, phase, step):
                return not self.interrupted  # False cancels the build

            def phase_finish(self, phase):
                start, parent = self.started.pop(phase, (self.t0, None))
                now = time.perf_counter()
                if not quiet and now - start >= 0.05 and \
                        parent in ("Building engine", "Building engine from subgraph", "Computing profile costs"):
                    print(f"  {phase}: {now - start:.1f} s ({now - self.t0:.1f} s elapsed)", file=stream, flush=True)

        return Monitor()


@contextlib.contextmanager
def _ctrl_c_cancels(monitor):
    """While the builder runs, Ctrl-C marks the monitor instead of raising inside NVIDIA's C++ callback."""
    if monitor is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, lambda *_: setattr(monitor, "interrupted", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if monitor.interrupted:
        raise KeyboardInterrupt


def parse(trt, onnx_path: Path, logger, strongly_typed: bool = True):
    """NVIDIA's parser on the file itself (so external weight files are found); BuildError names the node.
    Strongly typed wherever the flag exists (TensorRT 10.0+, TensorRT-RTX; TensorRT 11 ignores it: always on)."""
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        e = errors[0]
        where = f"node {e.node_name()!r} ({e.node_operator()})" if e.node_name() else "the graph"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BuildError(f"{onnx_path}: NVIDIA's ONNX parser refused {where}: {e.desc().strip()}{more}: "
                         "this graph cannot become an engine; nothing was written")
    return builder, network, flags


def build(trt, onnx_path: Path, opts: BuildOptions, configure, meta: dict, quiet: bool = False, stream=None,
          strongly_typed: bool = True, using: str = "") -> tuple[bytes, dict]:
    """Parse, configure (`configure(config, network, flags)` sets the target) and build; returns the plan
    and its manifest, written by `write_engine` (or together with other files by the caller). `using` names
    the builder and target in the line that opens the build."""
    import sys

    stream = stream or sys.stderr
    onnx_path = Path(onnx_path)
    engine_path = Path(opts.output) if opts.output else default_output(onnx_path, opts.target)
    if not quiet:
        print(f"building {engine_path} from {onnx_path} {using} ...", file=stream, flush=True)
    graph = onnx.load(str(onnx_path), load_external_data=False)
    shapes = _profile_shapes(graph, opts.profile)
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.ERROR)
    builder, network, flags = parse(trt, onnx_path, logger, strongly_typed)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gib * (1 << 30)))
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # so bench can show each layer's precision
    if not opts.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    monitor = _Progress.make(trt, stream, quiet)
    if monitor is not None:
        config.progress_monitor = monitor
    configure(config, network, flags)
    with _ctrl_c_cancels(monitor):
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError(f"{onnx_path}: NVIDIA's builder could not build an engine (its log is above); "
                         "nothing was written")
    seconds = time.perf_counter() - t0
    data = bytes(plan)
    manifest = {"built": True, "engine": str(engine_path), "onnx": onnx_path.name,
                "onnx_sha256": sha256_file(onnx_path), "engine_sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data), "precision": precision_of(graph), "layers": network.num_layers,
                "build_seconds": round(seconds, 2), "strongly_typed": bool(flags),
                "profiling_verbosity": config.profiling_verbosity.name.lower(),  # as the builder holds it
                "profile": {k: [list(s) for s in v] for k, v in shapes.items()} if shapes else None, **meta}
    return data, manifest


def write_engine(data: bytes, manifest: dict) -> dict:
    """The plan and its manifest, renamed into place together."""
    engine_path = Path(manifest["engine"])
    with atomic_files([engine_path, manifest_path(engine_path)]) as (tmp_engine, tmp_manifest):
        tmp_engine.write_bytes(data)
        tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
