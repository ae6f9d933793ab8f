"""Which precision an engine's layers actually run in, read from TensorRT's engine inspector: the only
way to see whether TensorRT chose INT8 kernels for an int8 graph or fell back to FP16/FP32 ones.

NVIDIA (IEngineInspector, "Engine Inspector" in the TensorRT developer guide): the detail depends on the
builder's ProfilingVerbosity (LAYER_NAMES_ONLY by default: names only; DETAILED: each layer's tensors and
their formats), and a dynamic engine shows formats only once an execution context with every input shape
set is given to the inspector. The JSON differs by version: TensorRT 10 writes one "Format/Datatype"
string per tensor ("Row major linear FP16 format"), TensorRT 11 (and TensorRT-RTX, which shares its API)
splits it into "DataType" ("Half") and "Format"; both are read. A layer counts by the type of its first
input, which is what its kernel reads (an INT8 convolution may write FP16); reformats and no-ops are
bookkeeping, not compute.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

BOOKKEEPING = {"Reformat", "NoOp", "Constant", "Shuffle", "Identity"}  # move or relabel data, compute nothing
# substrings of a data type or format text, most specific first ("bfloat16" also contains "float")
TYPES = (("bf16", "BF16"), ("bfloat", "BF16"), ("fp8", "FP8"), ("int8", "INT8"), ("int4", "INT4"),
         ("fp16", "FP16"), ("half", "FP16"), ("fp32", "FP32"), ("float", "FP32"), ("int32", "INT32"),
         ("int64", "INT64"), ("bool", "BOOL"))


def tensor_type(tensor: dict) -> str | None:
    """A layer tensor's data type from either schema; None where the inspector gives none (shapes unset)."""
    text = str(tensor.get("DataType") or tensor.get("Format/Datatype") or "").lower()
    return next((name for token, name in TYPES if token in text), None)


def _is_convolution(layer: dict) -> bool:
    return "Convolution" in str(layer.get("ParameterType", "")) or "onvolution" in str(layer.get("LayerType", ""))


@dataclass(frozen=True)
class LayerPrecisions:
    """Compute layers (and, among them, convolutions) by the data type their kernel reads."""
    layers: int  # every layer the inspector listed, bookkeeping included
    by_type: dict[str, int] = field(default_factory=dict)
    convolutions: dict[str, int] = field(default_factory=dict)
    unresolved: int = 0  # compute layers whose type the inspector did not give
    note: str | None = None  # why there are no figures, when there are none

    def describe(self) -> str:
        if self.note:
            return self.note
        conv = sum(self.convolutions.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_type.items(), key=lambda kv: -kv[1]))
        convs = ", ".join(f"{k} {v}" for k, v in sorted(self.convolutions.items(), key=lambda kv: -kv[1]))
        return (f"{sum(self.by_type.values())} compute layers: {parts or 'none'}"
                + (f"; convolutions ({conv}): {convs}" if conv else "")
                + (f"; {self.unresolved} without a type" if self.unresolved else ""))

    def no_int8_kernels(self) -> bool:
        """True when no convolution reads INT8: an int8 graph built this way runs as a float engine."""
        return not self.note and sum(self.convolutions.values()) > 0 and not self.convolutions.get("INT8")

    def to_dict(self) -> dict:
        return {"layers": self.layers, "by_type": self.by_type, "convolutions": self.convolutions,
                "unresolved": self.unresolved, "note": self.note, "summary": self.describe()}


def read_inspector(text: str) -> LayerPrecisions:
    """The counts from `get_engine_information(LayerInformationFormat.JSON)`."""
    try:
        layers = json.loads(text).get("Layers", [])
    except (json.JSONDecodeError, AttributeError):
        return LayerPrecisions(0, note=f"the engine inspector gave no JSON layer list ({str(text)[:60]!r}...)")
    if not layers:
        return LayerPrecisions(0, note="the engine lists no layers (built with ProfilingVerbosity.NONE): rebuild "
                                       "it with `elir-edge build` to see its layer precisions")
    if not all(isinstance(layer, dict) for layer in layers):
        return LayerPrecisions(len(layers), note="layer names only (built without ProfilingVerbosity.DETAILED): "
                                                 "rebuild it with `elir-edge build` to see its layer precisions")
    by_type, convs, unresolved = Counter(), Counter(), 0
    for layer in layers:
        if layer.get("LayerType") in BOOKKEEPING:
            continue
        kind = tensor_type((layer.get("Inputs") or [{}])[0])
        if kind is None:
            unresolved += 1
            continue
        by_type[kind] += 1
        if _is_convolution(layer):
            convs[kind] += 1
    note = None if by_type or not unresolved else \
        "the inspector gave no tensor types (a dynamic engine inspected without its input shapes set)"
    return LayerPrecisions(len(layers), dict(by_type), dict(convs), unresolved, note)
