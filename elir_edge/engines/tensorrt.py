"""Build TensorRT engines from our ONNX graphs (explicit Q/DQ INT8, or float) on the GPU they will run on.

Strongly typed where the builder offers it, static shapes, a workspace pool limit, a timing cache kept
next to the engine, and a JSON manifest beside it (TensorRT version, GPU, ONNX hash) that the runtime
checks before it loads the engine.
"""

from __future__ import annotations

from pathlib import Path

from elir_edge.common.files import atomic_file, sha256_file, write_json
from elir_edge.runtime.tensorrt import EngineUnavailable, environment, import_tensorrt


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
    manifest = {"built": True, "engine": str(engine_path), "onnx": Path(onnx_path).name, **here,
                "strongly_typed": strongly_typed,
                "precision": "fp16" if fp16 else "as in the ONNX (int8 Q/DQ)", "onnx_sha256": sha256_file(onnx_path),
                "engine_sha256": sha256_file(engine_path)}
    write_json(Path(str(engine_path) + ".json"), manifest)
    return manifest
