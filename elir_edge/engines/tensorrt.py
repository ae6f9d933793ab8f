"""TensorRT (10.x / 11.x): builds on the GPU the engine will run on, so it needs that GPU here.

Strongly typed wherever the builder offers it (TensorRT 10.0 and later; the only mode of 11): the
precision is the ONNX's own (model_fp16.onnx, model_int8_fp16.onnx). `fp16_flag` builds an fp32 graph
weakly typed with the FP16 builder flag instead, the way trtexec --fp16 does, where the flag exists
(TensorRT 10.x). A timing cache is kept beside the engine; one made on another GPU is dropped, not fatal.
TF32 is a default builder flag: fp32 layers on Ampere and later compute in TF32 unless it is turned off
(`BuildOptions.tf32`), and the manifest's precision says which.
"""

from __future__ import annotations

import sys
from pathlib import Path

from elir_edge.common.files import atomic_file
from elir_edge.engines.build import BuilderMissing, BuildError, BuildOptions, build, with_tf32
from elir_edge.runtime.cuda import CudaUnavailable, gpu_info

INSTALL = "pip install 'elir-edge[tensorrt]' on the machine with the NVIDIA GPU the engine is for"


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BuilderMissing(f"TensorRT is not installed ({INSTALL})") from None
    return tensorrt


def use_timing_cache(config, cache_path: Path) -> None:
    """The timing cache kept beside the engine; one made on another GPU or TensorRT, or one TensorRT cannot
    read (create_timing_cache returns None), is dropped for a fresh one; without even that, none is used."""
    old = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(old)
    if cache is not None and config.set_timing_cache(cache, False):
        return
    if old:
        print(f"elir-edge build: warning: timing cache {cache_path} does not fit this GPU or cannot be read; "
              "not used", file=sys.stderr)
        fresh = config.create_timing_cache(b"")
        if fresh is not None:
            config.set_timing_cache(fresh, False)


def build_tensorrt(onnx_path: Path, opts: BuildOptions, quiet: bool = False, fp16_flag: bool = False) -> tuple:
    trt = import_tensorrt()
    try:
        gpu = gpu_info()
    except CudaUnavailable as e:
        raise BuilderMissing(f"TensorRT builds on the GPU it builds for, and here: {e}") from None
    has_fp16_flag = hasattr(trt, "BuilderFlag") and hasattr(trt.BuilderFlag, "FP16")
    if fp16_flag and not has_fp16_flag:
        raise BuildError(f"TensorRT {trt.__version__} builds strongly typed networks only: build "
                         "model_fp16.onnx (written by `elir-edge export`) instead of the FP16 flag")
    cache_path = Path(opts.output or onnx_path).with_suffix(".timing_cache")  # beside the engine
    state = {}

    def configure(config, network, flags):
        if fp16_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        use_timing_cache(config, cache_path)
        state["config"] = config

    meta = {"builder": "tensorrt", "builder_version": trt.__version__, "tensorrt": trt.__version__,
            **{f"gpu_{k}": v for k, v in gpu.items()}, "fp16_flag": fp16_flag}
    data, manifest = build(trt, onnx_path, opts, configure, meta, quiet, strongly_typed=not fp16_flag,
                           using="with TensorRT on this GPU")
    precision = manifest["precision"].replace("fp32", "fp16 (FP16 flag)") if fp16_flag else manifest["precision"]
    manifest["precision"] = with_tf32(precision, opts.tf32, [gpu["compute_capability"].replace(".", "")])
    cache = state["config"].get_timing_cache()
    if cache is not None:
        with atomic_file(cache_path) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return data, manifest
