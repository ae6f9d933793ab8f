"""What the figures were measured on: CPU and the instruction-set features that decide int8 speed, cores,
library versions, and the GPU where one was used."""

from __future__ import annotations

import os
import platform

from elir_edge import __version__
from elir_edge.common.cores import usable_cores
from elir_edge.runtime.cpu_roof import cpu_features


def _gpu() -> dict:
    """GPU, driver and the NVIDIA runtimes installed, or why there is none."""
    from elir_edge.runtime import cuda

    try:
        info = {f"gpu_{k}": v for k, v in cuda.gpu_info().items()}
    except cuda.CudaUnavailable as e:
        return {"unavailable": str(e)}
    for module, key in (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt_rtx")):
        try:
            info[key] = __import__(module).__version__
        except ImportError:
            pass
    return info


def machine(gpu: bool) -> dict:
    """CPU (model, features), library versions and, when an artifact runs on a GPU, GPU and runtimes."""
    import onnxruntime
    import torch

    cpu = cpu_features()
    return {"cpu": cpu["model"] or platform.processor(), "cpu_features": cpu, "cores": usable_cores(),
            "machine_cores": os.cpu_count(), "gpu": _gpu() if gpu else None, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "elir_edge": __version__}
