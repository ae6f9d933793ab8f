"""TensorRT-RTX engines (`elir-edge build`, the default target): compiled ahead of time for chosen compute
capabilities; on the RTX GPU the plan finishes compiling (JIT) when it is loaded, which is timed on its own
(`load_ms`) and never mixed into latency."""

from __future__ import annotations

from pathlib import Path

from elir_edge.runtime import cuda
from elir_edge.runtime.engine import EngineError, EngineRunner

INSTALL = "pip install 'elir-edge[rtx]'"
# compute capability -> NVIDIA's name for it and the GPUs it covers: what TensorRT-RTX compiles for (its
# ComputeCapability enum), Turing and later; no SM90 (H100, H200), which only the full TensorRT serves
SMS = {"75": "Turing (RTX 20xx: RTX 2080 Ti)", "80": "Ampere (A100)", "86": "Ampere (RTX 30xx, A10, A40)",
       "89": "Ada (RTX 40xx, L4, L40)", "120": "Blackwell (RTX 50xx)", "121": "Blackwell (DGX Spark)"}


def where_it_runs(manifest: dict) -> str:
    sms = manifest.get("target_sms") or []
    gpus = manifest.get("target_gpus") or []
    return ", ".join(f"SM{s} ({g})" for s, g in zip(sms, gpus)) or "unknown GPUs"


def rebuild_for(sm: str) -> str:
    """The build that fits this GPU: TensorRT-RTX for an SM it targets, the full TensorRT for any other."""
    if sm in SMS:
        return f"rebuild with `elir-edge build --sm {sm}`"
    return f"TensorRT-RTX cannot target SM{sm}: build a TensorRT engine on this GPU with " \
           "`elir-edge build --target tensorrt`"


def open_tensorrt_rtx(path: Path, plan: bytes, manifest: dict, cuda_graph: bool = False,
                      meta: dict[str, str] | None = None) -> EngineRunner:
    version = manifest.get("builder_version")
    elsewhere = (f"{path} was built by TensorRT-RTX {version} for {where_it_runs(manifest)} and runs only on such "
                 f"a GPU")
    there = f"on that machine: {INSTALL} and `elir-edge bench --engine {path}`"
    try:
        gpu = cuda.gpu_info()
    except cuda.CudaUnavailable as e:
        raise EngineError(f"{elsewhere}; here: {e}; {there}") from None
    sm = gpu["compute_capability"].replace(".", "")
    if sm not in (manifest.get("target_sms") or []):
        raise EngineError(f"{elsewhere}; this GPU is {gpu['name']} (SM{sm}): {rebuild_for(sm)}")
    try:
        import tensorrt_rtx as trt
    except ImportError:
        raise EngineError(f"{elsewhere}; TensorRT-RTX is not installed here: {INSTALL}") from None
    if trt.__version__ != version:
        raise EngineError(f"{path} was built by TensorRT-RTX {version}, this machine has {trt.__version__}: "
                          "rebuild it with `elir-edge build`, or install that version")
    return EngineRunner(trt, plan, path, "TensorRT-RTX", cuda_graph, meta)
