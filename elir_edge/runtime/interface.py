"""What an ONNX artifact expects: its input names and shapes and the metadata elir-edge embeds."""

from __future__ import annotations

from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.runtime.runner import Interface

LATENT_CHANNELS = 16  # ELIR's latent width, for a graph that takes no eps to read it from


def input_names(baked_noise: bool) -> list[str]:
    return ["lq"] if baked_noise else ["lq", "eps"]


def read_interface(path: Path, model=None) -> tuple[dict[str, str], dict[str, list[int | None]]]:
    """The key/value metadata and the input shapes (None for a dynamic dimension) of an ONNX file,
    read in one load without external weight data (or from `model`, that load made by the caller)."""
    import onnx

    try:
        model = model if model is not None else onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError/OSError/… depending on the damage
        raise UserError(f"{path} is not a readable ONNX model ({type(e).__name__}): re-export it") from None
    shapes = {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    return {p.key: p.value for p in model.metadata_props}, shapes


def onnx_interface(path: Path, model=None) -> Interface:
    """The typed interface of an ONNX graph of ours (`model`: its load, if made); UserError if it takes no `lq`
    input."""
    meta, shapes = read_interface(path, model)
    if len(shapes.get("lq", [])) != 4:
        raise UserError(f"{path} has no NCHW input named lq (it has {', '.join(shapes) or 'none'}): it is not an "
                        "ELIR graph written by elir-edge")
    batch, _, height, width = shapes["lq"]
    eps = shapes.get("eps")
    return Interface(meta, height, width, batch, eps[1] if eps and eps[1] else LATENT_CHANNELS, eps is not None)


def read_metadata(path: Path) -> dict[str, str]:
    return read_interface(path)[0]
