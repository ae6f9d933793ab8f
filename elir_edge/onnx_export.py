"""Unrolled torch module -> simplified, checked ONNX with the export's metadata embedded."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch

from .errors import UserError

# Opset 17: GroupNorm exports as InstanceNormalization + Reshape, which every TensorRT 10 parser
# and ONNX Runtime accept (native GroupNormalization-21 has open TensorRT parser bugs).
OPSET = 17


def input_names(baked_noise: bool) -> list[str]:
    return ["lq"] if baked_noise else ["lq", "eps"]


def to_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], dynamic: bool) -> onnx.ModelProto:
    """Trace with the TorchScript exporter (dynamo=False keeps shared weights as one initializer)."""
    names = input_names(len(example) == 1)
    axes = None
    if dynamic:
        axes = {"lq": {0: "batch", 2: "height", 3: "width"}, "hq": {0: "batch", 2: "height", 3: "width"}}
        if "eps" in names:
            axes["eps"] = {0: "batch", 2: "height_8", 3: "width_8"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["hq"], dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim with its own numeric check off: the export stage verifies against PyTorch itself."""
    import onnxsim

    simplified, ok = onnxsim.simplify(model, check_n=0)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified graph")
    return simplified


def set_metadata(model: onnx.ModelProto, meta: dict) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=str(value))
    model.producer_name = "elir-edge"


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


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
