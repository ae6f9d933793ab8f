"""The JSON manifest beside every engine: which builder made it, for which GPU(s), from which ONNX.

Written by `elir_edge.engines`; read here before an engine is loaded, so a mismatch is one line, not a
crash inside the runtime."""

from __future__ import annotations

import json
from pathlib import Path

from elir_edge.errors import UserError


def manifest_path(engine: Path) -> Path:
    return Path(str(engine) + ".json")


def read_engine_manifest(engine: Path) -> dict:
    side = manifest_path(engine)
    if not side.is_file():
        raise UserError(f"{engine} has no manifest {side.name}: build it with `elir-edge build`")
    try:
        manifest = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{side} is not valid JSON: build the engine again with `elir-edge build`") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{side} is not an engine manifest: build the engine again with `elir-edge build`")
    return manifest


def source_onnx(engine: Path, manifest: dict) -> Path:
    """The ONNX an engine was built from (beside it): its metadata and input shapes describe the engine."""
    onnx_path = Path(engine).parent / str(manifest.get("onnx", ""))
    if not onnx_path.is_file() or onnx_path.suffix != ".onnx":
        raise UserError(f"{engine}: the ONNX it was built from ({manifest.get('onnx')}) is not beside it: keep the "
                        "engine in its export folder")
    return onnx_path
