"""What the figures were measured on: CPU, cores, library versions, and the GPU where one was used."""

from __future__ import annotations

import os
import platform

from elir_edge import __version__


def machine(gpu: bool) -> dict:
    """CPU, library versions and, when an artifact runs on a GPU, TensorRT version, GPU and CUDA driver."""
    import onnxruntime
    import torch

    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "gpu": None, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "elir_edge": __version__}
    if gpu:
        from elir_edge.runtime.tensorrt import EngineUnavailable, environment

        try:
            info["gpu"] = environment()
        except EngineUnavailable as e:
            info["gpu"] = {"unavailable": str(e)}
    return info
