"""The rules a Q/DQ ONNX graph must follow for TensorRT's explicit quantization, checked on the CPU.

Each violation says whether NVIDIA's ONNX parser refuses the graph (`refused`), or builds it and the
result is wrong or slow (advice). Which is which was measured against TensorRT-RTX's parser and builder
(tests/test_engines.py keeps the two in agreement on deliberately broken graphs). From NVIDIA's
explicit-quantization docs and the TensorRT ONNX parser (TensorRT 8.6 to 11):
  R1  activation and weight zero points are int8 and 0 (uint8 Q/DQ is reinterpreted as int8 on GPU)  refused
  R2  scales are positive (refused), finite (advice: a non-finite scale builds, the output is garbage)
  R3  activation Q/DQ is per-tensor (scalar scale)                                                 advice
  R4  weight DequantizeLinear reads an int8 initializer with one scale per output channel (refused),
      on the output-channel axis: 0 for Conv, 1 for ConvTranspose (advice: builds, scales the wrong way)
  R5  no Q/DQ directly around InstanceNormalization (GroupNorm), Sigmoid or Tanh                   advice
  R6  biases stay float (no int32 bias DequantizeLinear)                                           refused
  R7  a quantized Conv/ConvTranspose has DQ on both its input and its weight                       advice
  R8  the quantized inputs of one Concat share one scale                                           advice
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

CONVS = {"Conv", "ConvTranspose"}
NO_QDQ_AROUND = {"InstanceNormalization", "Sigmoid", "Tanh", "GroupNormalization"}


@dataclass(frozen=True)
class Violation:
    rule: str
    node: str
    message: str
    refused: bool = False  # NVIDIA's parser refuses the graph (else: it builds, wrong or slow)

    def __str__(self) -> str:
        return f"{self.rule} {self.node}: {self.message}" + (" (TensorRT refuses this)" if self.refused else "")


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.init = {i.name: i for i in g.initializer}
        for n in g.node:  # Constant nodes count as initializers here
            if n.op_type == "Constant":
                self.init[n.output[0]] = next(a.t for a in n.attribute if a.name == "value")
        self.nodes = [n for n in g.node if n.op_type != "Constant"]
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)

    def const(self, name: str) -> np.ndarray | None:
        t = self.init.get(name)
        return None if t is None else numpy_helper.to_array(t)


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def check(model: onnx.ModelProto, float_convs: set[str] = frozenset()) -> list[Violation]:
    """All rule violations; `float_convs` names convs deliberately left unquantized."""
    g = _Graph(model)
    out: list[Violation] = []
    for n in g.nodes:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = g.const(n.input[1])
        zp = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        is_weight = n.op_type == "DequantizeLinear" and n.input[0] in g.init
        if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
            dtype = "missing" if zp is None else zp.dtype
            out.append(Violation("R1", n.name, f"zero point must be int8 0 (is {dtype})", refused=True))
        if scale is None or np.any(scale <= 0):
            out.append(Violation("R2", n.name, "scale must be a positive constant", refused=True))
        elif not np.all(np.isfinite(scale)):
            out.append(Violation("R2", n.name, "scale must be finite"))
        elif not is_weight and scale.size != 1:
            out.append(Violation("R3", n.name, f"activation scale must be per-tensor (has {scale.size})"))
        if is_weight:
            w = g.const(n.input[0])
            users = g.consumers[n.output[0]]
            if w.dtype != np.int8:
                out.append(Violation("R4", n.name, f"weight initializer must be int8 (is {w.dtype})", refused=True))
            for u in users:
                if u.op_type in CONVS and u.input[1] == n.output[0] and scale is not None and scale.size > 1:
                    want, axis = (0 if u.op_type == "Conv" else 1), _axis(n)
                    if not -w.ndim <= axis < w.ndim or scale.size != w.shape[axis]:
                        out.append(Violation("R4", n.name, f"{scale.size} weight scales do not match axis {axis} of "
                                                           f"the weight {list(w.shape)}", refused=True))
                    elif axis != want:
                        out.append(Violation("R4", n.name, f"{u.op_type} weight scales must be on axis {want}"))
                if u.op_type in CONVS and len(u.input) > 2 and u.input[2] == n.output[0]:
                    out.append(Violation("R6", n.name, "bias must stay float, not DequantizeLinear", refused=True))
        if n.op_type == "DequantizeLinear":
            for u in g.consumers[n.output[0]]:
                if u.op_type in NO_QDQ_AROUND:
                    out.append(Violation("R5", n.name, f"DequantizeLinear feeds {u.op_type}"))
        if n.op_type == "QuantizeLinear":
            p = g.producer.get(n.input[0])
            if p is not None and p.op_type in NO_QDQ_AROUND:
                out.append(Violation("R5", n.name, f"QuantizeLinear follows {p.op_type}"))
    for n in g.nodes:
        if n.op_type in CONVS and n.name not in float_convs:
            srcs = [g.producer.get(n.input[0]), g.producer.get(n.input[1])]
            if any(s is None or s.op_type != "DequantizeLinear" for s in srcs):
                out.append(Violation("R7", n.name, f"{n.op_type} lacks DequantizeLinear on its input or weight"))
        if n.op_type == "Concat":
            scales = {float(g.const(p.input[1]).reshape(-1)[0]) for i in n.input
                      if (p := g.producer.get(i)) is not None and p.op_type == "DequantizeLinear"}
            if len(scales) > 1:
                out.append(Violation("R8", n.name, f"quantized Concat inputs use {len(scales)} different scales"))
    return out
