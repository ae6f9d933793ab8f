"""TensorRT engines (.trt/.engine/.plan built by `elir-edge build --target tensorrt`): they run only with
the TensorRT version and on the GPU they were built with, so the manifest is checked first."""

from __future__ import annotations

from pathlib import Path

from elir_edge.runtime import cuda
from elir_edge.runtime.engine import EngineError, EngineRunner

INSTALL = "pip install 'elir-edge[tensorrt]' on a machine with an NVIDIA GPU"


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise cuda.CudaUnavailable(f"TensorRT is not installed ({INSTALL})") from None
    return tensorrt


def check_manifest(manifest: dict, trt_version: str, gpu: dict, path: Path) -> None:
    """An engine runs only with the TensorRT version and the GPU model it was built on: one compute capability
    is not enough (an RTX 3090 and an A10 are both 8.6), TensorRT itself warns that "using an engine plan file
    across different models of devices is not supported"."""
    if manifest.get("tensorrt") != trt_version:
        raise EngineError(f"{path} was built with TensorRT {manifest.get('tensorrt')}, this machine has "
                          f"{trt_version}: rebuild it here with `elir-edge build --target tensorrt`")
    if manifest.get("gpu_compute_capability") != gpu["compute_capability"]:
        raise EngineError(f"{path} was built for compute capability {manifest.get('gpu_compute_capability')} "
                          f"({manifest.get('gpu_name')}), this machine has {gpu['compute_capability']} ({gpu['name']}): "
                          "rebuild it here with `elir-edge build --target tensorrt`")
    if manifest.get("gpu_name") != gpu["name"]:
        raise EngineError(f"{path} was built on {manifest.get('gpu_name')}, this machine has {gpu['name']} (both "
                          f"{gpu['compute_capability']}): TensorRT does not support a plan on another GPU model; "
                          "rebuild it here with `elir-edge build --target tensorrt`")


def open_tensorrt(path: Path, plan: bytes, manifest: dict, cuda_graph: bool = False,
                  meta: dict[str, str] | None = None) -> EngineRunner:
    trt = import_tensorrt()
    gpu = cuda.gpu_info()
    check_manifest(manifest, trt.__version__, gpu, path)
    return EngineRunner(trt, plan, path, "TensorRT", cuda_graph, meta)
