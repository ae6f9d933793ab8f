"""What an ONNX artifact expects: its input names and shapes and the metadata elir-edge embeds."""

from __future__ import annotations

from pathlib import Path

import onnx

from elir_edge.errors import UserError


def input_names(baked_noise: bool) -> list[str]:
    return ["lq"] if baked_noise else ["lq", "eps"]


def read_interface(path: Path) -> tuple[dict[str, str], dict[str, list[int | None]]]:
    """The key/value metadata and the input shapes (None for a dynamic dimension) of an ONNX file,
    read in one load without external weight data."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError/OSError/… depending on the damage
        raise UserError(f"{path} is not a readable ONNX model ({type(e).__name__}): re-export it") from None
    shapes = {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    return {p.key: p.value for p in model.metadata_props}, shapes


def graph_size(shapes: dict[str, list[int | None]]) -> tuple[int | None, int | None, int]:
    """Static H, W of the graph's `lq` input (None when dynamic) and the latent channel count."""
    latent = shapes["eps"][1] if "eps" in shapes and shapes["eps"][1] else 16
    return shapes["lq"][2], shapes["lq"][3], latent


def read_metadata(path: Path) -> dict[str, str]:
    return read_interface(path)[0]


def runner_interface(runner) -> tuple[dict[str, str], dict[str, list[int | None]]]:
    """Metadata and input shapes of what a runner runs: the ONNX it was made from, or (PyTorch weights) what
    the export's manifest says. UserError if it takes no `lq` input (not an ELIR graph of ours)."""
    meta, shapes = getattr(runner, "interface", None) or read_interface(runner.graph_path)
    if "lq" not in shapes:
        raise UserError(f"{getattr(runner, 'path', runner.name)} has no input named lq: it is not an ELIR graph "
                        "written by elir-edge")
    return meta, shapes


def is_int8_cpu_form(meta: dict[str, str]) -> bool:
    """The ONNX Runtime CPU form of an int8 graph (model_int8_cpu.onnx), by the metadata quantize writes."""
    return str(meta.get("int8_flavour", "")).startswith("cpu")
