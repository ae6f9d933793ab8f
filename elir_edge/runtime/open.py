"""Pick the runner for an artifact: .onnx -> ONNX Runtime; an engine -> the backend its manifest names
(TensorRT-RTX or TensorRT), after checking the manifest against the file and this machine."""

from __future__ import annotations

import hashlib
from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.runtime.engine_manifest import read_engine_manifest, source_onnx
from elir_edge.runtime.ort import OrtRunner

ENGINE_SUFFIXES = (".trt", ".engine", ".plan")


def open_engine(path: Path, cuda_graph: bool = False):
    """An engine's runner; `graph_path` names the ONNX it was built from (its metadata describe it)."""
    manifest = read_engine_manifest(path)
    graph = source_onnx(path, manifest)
    plan = path.read_bytes()
    if manifest.get("engine_sha256") and hashlib.sha256(plan).hexdigest() != manifest["engine_sha256"]:
        raise UserError(f"{path} is not the engine its manifest describes (damaged, truncated or replaced): "
                        "build it again with `elir-edge build`")
    builder = manifest.get("builder")
    if builder == "tensorrt-rtx":
        from elir_edge.runtime.tensorrt_rtx import open_tensorrt_rtx as opener
    elif builder == "tensorrt":
        from elir_edge.runtime.tensorrt import open_tensorrt as opener
    else:
        raise UserError(f"{path}: its manifest names no known builder ({builder!r}): build it with `elir-edge build`")
    runner = opener(path, plan, manifest, cuda_graph)
    runner.graph_path, runner.manifest = graph, manifest
    return runner


def open_runner(path: Path, threads: int | None = None, provider: str = "cpu", cuda_graph: bool = False):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx (or an engine) written by elir-edge")
    if path.suffix == ".onnx":
        return OrtRunner(path, threads, provider)
    if path.suffix in ENGINE_SUFFIXES:
        return open_engine(path, cuda_graph)
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or an engine "
                    f"({', '.join(ENGINE_SUFFIXES)})")
