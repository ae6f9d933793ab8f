"""What the figures were measured on: CPU and the instruction-set features that decide int8 speed, cores,
library versions, and the GPU where one was used."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from elir_edge import __version__

# /proc/cpuinfo flag -> what it means for convolutions
X86_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16", "amx_tile": "AMX"}
ARM_FEATURES = {"asimd": "NEON", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "SVE", "sve2": "SVE2",
                "bf16": "BF16"}


def cpu_features(cpuinfo: str) -> dict:
    """CPU model, the features that matter here, and the int8 dot-product instruction it has (if any), from
    the text of /proc/cpuinfo (x86: 'flags', Arm: 'Features')."""
    model, flags, arm = "", set(), False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key == "flags":
            flags |= set(value.split())
        elif key == "features":
            flags |= set(value.split())
            arm = True
        elif key == "cpu implementer":
            arm = True
    table = ARM_FEATURES if arm else X86_FEATURES
    found = [name for flag, name in table.items() if flag in flags]
    if arm:
        int8 = "i8mm" if "i8mm" in flags else "dotprod" if "asimddp" in flags else None
    else:
        int8 = ("AMX-INT8" if "amx_int8" in flags else "AVX-512 VNNI" if "avx512_vnni" in flags
                else "AVX-VNNI" if "avx_vnni" in flags else None)
    return {"model": model, "isa": "arm64" if arm else "x86_64", "features": found, "int8_dot_product": int8}


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

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cpu = cpu_features(cpuinfo)
    return {"cpu": cpu["model"] or platform.processor(), "cpu_features": cpu, "cores": os.cpu_count(),
            "gpu": _gpu() if gpu else None, "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "elir_edge": __version__}
