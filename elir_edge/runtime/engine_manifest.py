"""The JSON manifest beside every engine: which builder made it, for which GPU(s), from which ONNX.

Written by `elir_edge.engines`; read here before an engine is loaded, so a mismatch is one line, not a
crash inside the runtime."""

from __future__ import annotations

import json
from pathlib import Path

from elir_edge.common.files import refuse_foreign
from elir_edge.errors import UserError


def manifest_path(engine: Path) -> Path:
    return Path(str(engine) + ".json")


def is_engine_manifest(path: Path) -> bool:
    """A manifest `elir-edge build` wrote: JSON naming its builder."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "builder" in manifest


def refuse_foreign_engine(engine: Path, what: str) -> None:
    """An engine path may be rebuilt only where elir-edge built before: an existing engine needs our manifest
    beside it, and an existing manifest must be ours; a user's files of those names are refused."""
    refuse_foreign(engine, lambda p: is_engine_manifest(manifest_path(p)), what)
    refuse_foreign(manifest_path(engine), is_engine_manifest, f"{what}: the manifest")


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
