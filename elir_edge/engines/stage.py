"""`elir-edge build`: check the request, then hand the graph to the chosen NVIDIA builder; and the engine an
export folder ships for the RTX 2080 Ti, which `quantize` and `demo` ask for through `turing_engine`."""

from __future__ import annotations

from pathlib import Path

from elir_edge.common.files import ensure_writable_dir
from elir_edge.engines.build import TARGETS, TURING, BuilderMissing, BuildOptions, default_output, write_engine
from elir_edge.errors import UserError
from elir_edge.model.export_folder import FP16, RTX_ENGINE, ExportFolder
from elir_edge.runtime.engine_manifest import refuse_foreign_engine
from elir_edge.runtime.interface import read_interface


def engine_output(onnx_path: Path, output: Path | None, target: str = "rtx", what: str = "-o") -> Path:
    """Where an engine of `onnx_path` goes, refused in one line (before any work) when it cannot or must not
    be written there: the input itself, a folder, an unwritable place, a user's file of that name."""
    out = Path(output) if output else default_output(onnx_path, target)
    if out.resolve() == Path(onnx_path).resolve():
        raise UserError(f"{what} {out} is the input graph itself: choose another engine path")
    if out.is_dir():
        raise UserError(f"{what} {out} is a folder: give the engine's file name")
    if out.suffix not in (".engine", ".plan", ".trt"):
        raise UserError(f"{what} {out}: name the engine file *.engine (or .plan/.trt)")
    ensure_writable_dir(out.parent)
    refuse_foreign_engine(out, what)
    return out


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
    if opts.target == "rtx":
        from elir_edge.engines.rtx import check_sms

        check_sms(opts.sms)
    opts = BuildOptions(**{**opts.__dict__, "output": engine_output(onnx_path, opts.output, opts.target)})
    if opts.target == "rtx":
        from elir_edge.engines.rtx import build_rtx

        return write_engine(*build_rtx(onnx_path, opts, quiet))
    from elir_edge.engines.tensorrt import build_tensorrt

    return write_engine(*build_tensorrt(onnx_path, opts, quiet))


def turing_engine(folder: ExportFolder, sms: list[str] | None = None, output: Path | None = None,
                  required: bool = False, quiet: bool = False) -> dict:
    """The TensorRT-RTX engine of the folder's model_fp16.onnx, for the RTX 2080 Ti by default: FP16 is what
    NVIDIA's TensorRT-RTX matrix lists for Turing (engines.support). Built on any machine; a missing
    tensorrt-rtx (or fp16 graph) is a reason in the result, unless `required` (an explicit output path)."""
    fp16 = folder / FP16
    try:
        if not fp16.is_file():
            raise BuilderMissing(f"{fp16} is missing (exported with --no-fp16): export again without it")
        return build_engine(fp16, BuildOptions(sms=sms or list(TURING), output=output or folder / RTX_ENGINE), quiet=quiet)
    except BuilderMissing as e:
        if required:
            raise UserError(f"engine {output}: {e}") from None
        return {"built": False, "reason": str(e)}
