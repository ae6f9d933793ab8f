"""Pick the runner for an artifact by its suffix: .onnx -> ONNX Runtime, .trt/.engine/.plan -> TensorRT."""

from __future__ import annotations

from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.runtime.ort import OrtRunner

ENGINE_SUFFIXES = (".trt", ".engine", ".plan")


def open_runner(path: Path, threads: int | None = None, provider: str = "cpu", cuda_graph: bool = False):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx (or .trt engine) written by elir-edge")
    if path.suffix == ".onnx":
        return OrtRunner(path, threads, provider)
    if path.suffix in ENGINE_SUFFIXES:
        from elir_edge.runtime.tensorrt import EngineUnavailable, TrtRunner

        try:
            return TrtRunner(path, cuda_graph)
        except EngineUnavailable as e:
            raise UserError(f"{path}: {e}") from None
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or a .trt engine")
