"""Which precision an engine's layers actually run in, read from TensorRT's engine inspector: the only
way to see whether TensorRT chose INT8 kernels for an int8 graph or fell back to FP16/FP32 ones.

NVIDIA (IEngineInspector, "Engine Inspector" in the TensorRT developer guide): the detail depends on the
builder's ProfilingVerbosity (LAYER_NAMES_ONLY by default: names only; DETAILED: each layer's tensors),
and a dynamic engine shows concrete dimensions and formats only once an execution context with every input
shape set is given to the inspector. The per-tensor fields differ by version: TensorRT 10 writes one
"Format/Datatype" string ("Row major linear FP16 format", or "Half"), TensorRT 11 and TensorRT-RTX split it
into "Datatype" ("Half") and "Format" (NVIDIA's 11.x inspector migration note; "DataType" is the key of
its "I/O Tensors"); all are read. A layer counts by the type of its first input, what its kernel reads
(an INT8 convolution may write FP16; NVIDIA's trex does the same). Data movement, shape and
synchronisation layers and unfused Q/DQ are not compute. Convolutions are told by TensorRT's layer type
(CaskConvolution, ConvActPool, "correlation" in some 10.x engines) or, for Myelin-compiled layers that
carry no parameters, by the ONNX node in their metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

NOT_COMPUTE = {"reformat", "noop", "constant", "shuffle", "identity", "reshape", "shape_call", "signal", "wait",
               "trainstation", "shapehosttodevice", "devicetoshapehost", "quantize", "dequantize"}
# substrings of a data type or format text, most specific first ("bfloat16" also contains "float")
TYPES = (("bf16", "BF16"), ("bfloat", "BF16"), ("fp8", "FP8"), ("int8", "INT8"), ("int4", "INT4"),
         ("fp16", "FP16"), ("half", "FP16"), ("fp32", "FP32"), ("float", "FP32"), ("int32", "INT32"),
         ("int64", "INT64"), ("bool", "BOOL"))
CONVOLUTION = ("onvolution", "orrelation", "convactpool")  # in a layer type or parameter type


def tensor_type(tensor: dict) -> str | None:
    """A layer tensor's data type from any of the schemas; None where the inspector gives none."""
    for key in ("Datatype", "DataType", "Format/Datatype", "Format"):
        text = str(tensor.get(key) or "").lower()
        found = next((name for token, name in TYPES if token in text), None)
        if found:
            return found
    return None


def _is_compute(layer: dict) -> bool:
    return str(layer.get("LayerType", "")).lower() not in NOT_COMPUTE and layer.get("Origin") != "QDQ"


def _is_convolution(layer: dict) -> bool:
    """By TensorRT's own layer or parameter type; a Myelin layer has neither, only its ONNX node's name."""
    kinds = f"{layer.get('LayerType', '')} {layer.get('ParameterType', '')}".lower()
    return any(c in kinds for c in CONVOLUTION) or "/Conv" in str(layer.get("Metadata", ""))


def _ranked(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


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
        return (f"{sum(self.by_type.values())} compute layers: {_ranked(self.by_type) or 'none'}"
                + (f"; convolutions ({conv}): {_ranked(self.convolutions)}" if conv else
                   "; no layer recognisable as a convolution")
                + (f"; {self.unresolved} without a type" if self.unresolved else ""))

    def no_int8_kernels(self) -> bool:
        """True when no convolution reads INT8: an int8 graph built this way runs as a float engine."""
        return not self.note and sum(self.convolutions.values()) > 0 and not self.convolutions.get("INT8")

    def to_dict(self) -> dict:
        return {"layers": self.layers, "by_type": self.by_type, "convolutions": self.convolutions,
                "unresolved": self.unresolved, "note": self.note, "summary": self.describe()}


def unreadable(why: str) -> LayerPrecisions:
    return LayerPrecisions(0, note=f"the engine inspector gave no layer list ({why})")


def read_inspector(text: str) -> LayerPrecisions:
    """The counts from `get_engine_information(LayerInformationFormat.JSON)`."""
    try:
        layers = json.loads(text).get("Layers", [])
    except (json.JSONDecodeError, AttributeError):
        return unreadable(f"not JSON: {str(text)[:60]!r}...")
    if not layers:
        return LayerPrecisions(0, note="the engine lists no layers (built with ProfilingVerbosity.NONE): rebuild "
                                       "it with `elir-edge build` to see its layer precisions")
    if not all(isinstance(layer, dict) for layer in layers):
        return LayerPrecisions(len(layers), note="layer names only (built without ProfilingVerbosity.DETAILED): "
                                                 "rebuild it with `elir-edge build` to see its layer precisions")
    by_type, convs, unresolved = Counter(), Counter(), 0
    for layer in filter(_is_compute, layers):
        kind = tensor_type((layer.get("Inputs") or [{}])[0])
        if kind is None:
            unresolved += 1
        else:
            by_type[kind] += 1
            convs[kind] += _is_convolution(layer)
    note = None if by_type or not unresolved else "the inspector gave no tensor types for any layer"
    return LayerPrecisions(len(layers), dict(by_type), {k: v for k, v in convs.items() if v}, unresolved, note)
