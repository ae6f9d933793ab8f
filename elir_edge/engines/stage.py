"""`elir-edge build`: check the request, then hand the graph to the chosen NVIDIA builder."""

from __future__ import annotations

from pathlib import Path

from elir_edge.common.files import ensure_writable_dir
from elir_edge.engines.build import TARGETS, BuildOptions, default_output, write_engine
from elir_edge.errors import UserError
from elir_edge.model.export_folder import ExportFolder
from elir_edge.runtime.engine_manifest import refuse_foreign_engine
from elir_edge.runtime.interface import read_interface


def build_engine(onnx_path: Path, opts: BuildOptions, quiet: bool = False) -> dict:
    """Build one engine; UserError (BuildError, BuilderMissing) in one line when it cannot be."""
    onnx_path = Path(onnx_path)
    if opts.target not in TARGETS:
        raise UserError(f"unknown --target {opts.target!r}: use rtx (TensorRT-RTX, any machine) or tensorrt")
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path}: no such ONNX file: give a graph written by `elir-edge export` or `quantize`")
    if onnx_path.suffix != ".onnx":
        raise UserError(f"{onnx_path} is not an .onnx file: give a graph written by `elir-edge export` or `quantize`")
    read_interface(onnx_path)  # a damaged or foreign file stops here, in one line
    ExportFolder.check_artifact(onnx_path)
    out = Path(opts.output) if opts.output else default_output(onnx_path, opts.target)
    if out.resolve() == onnx_path.resolve():
        raise UserError(f"-o {out} is the input graph itself: choose another engine path")
    if out.is_dir():
        raise UserError(f"-o {out} is a folder: give the engine's file name")
    ensure_writable_dir(out.parent)
    refuse_foreign_engine(out, "-o")
    opts = BuildOptions(**{**opts.__dict__, "output": out})
    if opts.target == "rtx":
        from elir_edge.engines.rtx import build_rtx

        return write_engine(*build_rtx(onnx_path, opts, quiet))
    from elir_edge.engines.tensorrt import build_tensorrt

    return write_engine(*build_tensorrt(onnx_path, opts, quiet))
