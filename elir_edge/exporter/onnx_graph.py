"""Unrolled torch module -> simplified, checked ONNX with the export's metadata embedded."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch

from elir_edge.runtime.interface import input_names

# Opset 17: GroupNorm exports as InstanceNormalization + Reshape, which every TensorRT 10 parser
# and ONNX Runtime accept (native GroupNormalization-21 has open TensorRT parser bugs).
OPSET = 17


def to_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], dynamic: bool) -> onnx.ModelProto:
    """Trace with the TorchScript exporter (dynamo=False keeps shared weights as one initializer)."""
    names = input_names(len(example) == 1)
    axes = free_axes(names, batch=True) if dynamic else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["hq"], dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())


def free_axes(names: list[str], batch: bool) -> dict[str, dict[int, str]]:
    """The torch.onnx `dynamic_axes` that leave an image's height and width (and, with `batch`, the batch) free."""
    axes = {name: {2: "height", 3: "width"} for name in ("lq", "hq")}
    if "eps" in names:
        axes["eps"] = {2: "height_8", 3: "width_8"}
    if batch:
        for dims in axes.values():
            dims[0] = "batch"
    return axes


def simplify(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None) -> onnx.ModelProto:
    """onnxsim with its own numeric check off: the export stage verifies against PyTorch itself. `input_shapes`
    fixes free input dimensions first (onnxsim then folds the shape arithmetic they fed)."""
    import onnxsim

    simplified, ok = onnxsim.simplify(model, check_n=0, overwrite_input_shapes=input_shapes)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified graph")
    return simplified


def set_metadata(model: onnx.ModelProto, meta: dict) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=str(value))
    model.producer_name = "elir-edge"


def save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
