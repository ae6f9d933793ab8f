"""The execution context's runtime configuration, where the TensorRT API has one (TensorRT-RTX's
IRuntimeConfig): kernels specialised before anything is timed, CUDA graphs the way TensorRT-RTX makes
them, and the runtime cache kept beside the engine so a second process does not repeat the JIT.

NVIDIA's rules, from the installed tensorrt_rtx 1.7.1's docstrings and the TensorRT-RTX documentation:
- DynamicShapesKernelSpecializationStrategy: LAZY (the default) "use[s] a fallback kernel till
  compilation is complete", so a short warm-up times, and a CUDA graph freezes, the fallback kernels;
  EAGER compiles the shape-specialised kernels for each shape when it is first run ("Warm up or use
  kEAGER specialization", TensorRT-RTX's dynamic-shapes guide).
- CudaGraphStrategy.WHOLE_GRAPH_CAPTURE: TensorRT-RTX stream-captures the inference and replays the
  graph itself; a capture needs BuilderFlag.REQUIRE_USER_ALLOCATION ("required when using CUDA stream
  capture", TensorRT-RTX 1.2 release notes; it "ensures that inference will support graph capture", its
  docstring), which `is_stream_capturable` reports, so the runner asks it before it says "CUDA graph".
- IRuntimeCache.deserialize validates the blob against this GPU, driver and TensorRT-RTX version and
  returns False on any mismatch: such a cache is dropped, and a new one written when the runner closes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from elir_edge.common.files import atomic_file


@dataclass
class RuntimeSetup:
    """What the context was made with: the config (None: the API has none), whether TensorRT makes the CUDA
    graphs (the runner then captures nothing itself), and the runtime cache and its file."""
    config: object | None
    graph_by_tensorrt: bool
    cache: object | None
    cache_path: Path


def cache_path(engine_path: Path) -> Path:
    return Path(f"{engine_path}.runtime_cache")


def configure(trt, engine, cuda_graph: bool, engine_path: Path) -> RuntimeSetup:
    """EAGER specialisation, WHOLE_GRAPH_CAPTURE for `cuda_graph`, and the runtime cache, on the APIs that
    have them (TensorRT-RTX); the full TensorRT keeps its defaults and the runner's own capture."""
    path = cache_path(engine_path)
    if not (hasattr(engine, "create_runtime_config") and hasattr(trt, "DynamicShapesKernelSpecializationStrategy")):
        return RuntimeSetup(None, False, None, path)
    config = engine.create_runtime_config()
    config.dynamic_shapes_kernel_specialization_strategy = trt.DynamicShapesKernelSpecializationStrategy.EAGER
    by_tensorrt = cuda_graph and hasattr(trt, "CudaGraphStrategy") and _whole_graph_capture(trt, config)
    return RuntimeSetup(config, by_tensorrt, _load_cache(config, path), path)


def _whole_graph_capture(trt, config) -> bool:
    """WHOLE_GRAPH_CAPTURE, confirmed by reading it back: C++ setCudaGraphStrategy answers a bool (NVIDIA's
    apiUsage sample checks it) that the Python property drops."""
    config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    return config.cuda_graph_strategy == trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE


def _load_cache(config, path: Path):
    """The runtime cache of an earlier run, or a new one where there is none or it is another machine's."""
    cache = config.create_runtime_cache() if hasattr(config, "create_runtime_cache") else None
    if cache is None:
        return None
    if path.is_file() and not cache.deserialize(path.read_bytes()):
        warnings.warn(f"runtime cache {path} was made on another GPU, driver or TensorRT-RTX version: dropped, a "
                      "new one is written when this run ends", stacklevel=4)
    return cache if config.set_runtime_cache(cache) else None


def save_cache(setup: RuntimeSetup) -> None:
    """The runtime cache beside the engine, written whole or not at all; a folder that cannot take it costs
    only the JIT next time (a one-line warning)."""
    if setup.cache is None:
        return
    blob = setup.cache.serialize()  # None where TensorRT-RTX cannot (NVIDIA's apiUsage sample checks for it)
    if blob is None:
        _not_written(setup, "TensorRT-RTX could not serialize it")
        return
    try:
        with atomic_file(setup.cache_path) as tmp:
            tmp.write_bytes(bytes(blob))
    except OSError as e:
        _not_written(setup, e.strerror)


def _not_written(setup: RuntimeSetup, why: str) -> None:
    warnings.warn(f"runtime cache {setup.cache_path} not written ({why}): the next run compiles again", stacklevel=4)
