"""TensorRT engines: the only module that imports `tensorrt` or the CUDA bindings.

Build: parse the Q/DQ ONNX (explicit quantization), strongly typed where the builder offers it
(TensorRT >= 10.12; the only mode of TensorRT 11), static shapes, workspace pool limit, a timing cache
kept next to the engine. A JSON manifest beside the engine records TensorRT version, GPU and ONNX
hash; `load_engine` refuses an engine whose manifest does not match this machine, in one line.
Without TensorRT or an NVIDIA GPU every entry point raises EngineUnavailable saying which is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .artifacts import atomic_file, write_json
from .checkpoint import sha256_file

INSTALL_HINT = "pip install 'elir-edge[tensorrt]' on a machine with an NVIDIA GPU"

_GPU_PROBE = """
import json
from cuda.bindings import runtime as rt
err, n = rt.cudaGetDeviceCount()
if int(err) != 0 or n < 1:
    print(json.dumps({"error": f"cudaGetDeviceCount: {err}, {n if int(err) == 0 else 0} device(s)"}))
else:
    err, p = rt.cudaGetDeviceProperties(0)
    name = p.name.decode(errors="replace").rstrip("\\x00") if isinstance(p.name, bytes) else str(p.name)
    print(json.dumps({"name": name, "compute_capability": f"{p.major}.{p.minor}"}))
"""


class EngineUnavailable(Exception):
    """TensorRT, the CUDA bindings or a GPU is missing, or an engine does not fit this machine."""


def gpu_info() -> dict:
    """Name and compute capability of GPU 0, asked in a child process: a CUDA runtime without a
    device can crash the asking process (TensorRT's lean runtime segfaults on deserialize)."""
    try:
        import cuda.bindings  # noqa: F401
    except ImportError:
        raise EngineUnavailable(f"the CUDA Python bindings are not installed ({INSTALL_HINT})") from None
    try:
        out = subprocess.run([sys.executable, "-c", _GPU_PROBE], capture_output=True, text=True, timeout=60)
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        raise EngineUnavailable("no NVIDIA GPU answered (the CUDA device probe failed)") from None
    if "error" in info:
        raise EngineUnavailable(f"no NVIDIA GPU ({info['error']})")
    return info


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineUnavailable(f"TensorRT is not installed ({INSTALL_HINT})") from None
    return trt


def environment() -> dict:
    """TensorRT version and GPU of this machine, or EngineUnavailable."""
    trt = import_tensorrt()
    return {"tensorrt": trt.__version__, **{f"gpu_{k}": v for k, v in gpu_info().items()}}


def check_manifest(engine_manifest: dict, here: dict) -> None:
    """An engine runs only with the TensorRT version and GPU it was built for."""
    for key, what in (("tensorrt", "TensorRT version"), ("gpu_compute_capability", "GPU compute capability"),
                      ("gpu_name", "GPU")):
        if engine_manifest.get(key) != here.get(key):
            raise EngineUnavailable(f"engine built for {what} {engine_manifest.get(key)}, this machine has "
                                    f"{here.get(key)}: rebuild it here with `elir-edge quantize`")


def build_engine(onnx_path: Path, engine_path: Path, workspace_gib: float = 2.0, fp16: bool = False) -> dict:
    """Build and serialize an engine from a Q/DQ (or float) ONNX; returns the manifest written beside it."""
    here = environment()
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineUnavailable(f"TensorRT could not parse {onnx_path}: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        if strongly_typed or not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineUnavailable("this TensorRT builds strongly typed networks: FP16 comes from an FP16 ONNX")
        config.set_flag(trt.BuilderFlag.FP16)
    cache_path = Path(engine_path).with_suffix(".timing_cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineUnavailable(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    with atomic_file(Path(engine_path)) as tmp:
        tmp.write_bytes(bytes(plan))
    with atomic_file(cache_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    manifest = {"built": True, "engine": str(engine_path), **here, "strongly_typed": strongly_typed,
                "precision": "fp16" if fp16 else "as in the ONNX (int8 Q/DQ)", "onnx_sha256": sha256_file(onnx_path),
                "engine_sha256": sha256_file(engine_path)}
    write_json(Path(str(engine_path) + ".json"), manifest)
    return manifest


def load_engine(engine_path: Path):
    """Deserialize an engine after checking its manifest against this machine."""
    engine_path = Path(engine_path)
    side = Path(str(engine_path) + ".json")
    if not side.is_file():
        raise EngineUnavailable(f"{engine_path} has no manifest {side.name}: build it with `elir-edge quantize`")
    here = environment()
    check_manifest(json.loads(side.read_text()), here)
    trt = import_tensorrt()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineUnavailable(f"{engine_path} is damaged or truncated: rebuild it with `elir-edge quantize`")
    return engine
