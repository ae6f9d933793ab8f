"""fp16 graphs for NVIDIA's 16-bit paths (TensorRT-RTX is built for them; strongly typed builders take
the ONNX's own types), made with onnxconverter-common.

Inputs and outputs stay float32, with a Cast at each end, so every runner feeds the same arrays. The
GroupNorms (InstanceNormalization) stay fp32 where their input, measured on the verification inputs,
exceeds 256 in magnitude: x*x then overflows fp16 (max 65504) in a variance computed in 16 bits. Q/DQ
graphs move to opset 19, the first whose QuantizeLinear/DequantizeLinear take fp16 scales and data.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx

from elir_edge.runtime.ort import session_with_outputs

NORM_SAFE = 256.0  # |x| above this: x*x > 65504, the largest fp16
QDQ_OPSET = 19


def norm_inputs(model: onnx.ModelProto) -> dict[str, str]:
    """The input tensor of every InstanceNormalization node, by node name."""
    return {n.name: n.input[0] for n in model.graph.node if n.op_type == "InstanceNormalization"}


def norm_input_peaks(model: onnx.ModelProto, feeds: list[dict]) -> dict[str, float]:
    """Largest |x| at the input of every InstanceNormalization node, over the given inputs."""
    norms = norm_inputs(model)
    if not norms:
        return {}
    names = list(dict.fromkeys(norms.values()))
    sess = session_with_outputs(model, names)
    peaks = dict.fromkeys(names, 0.0)
    for f in feeds:
        for name, value in zip(names, sess.run(names, f)):
            peaks[name] = max(peaks[name], float(np.abs(value).max()))
    return {node: peaks[tensor] for node, tensor in norms.items()}


def to_fp16(model: onnx.ModelProto, peaks: dict[str, float]) -> tuple[onnx.ModelProto, dict]:
    """The fp16 graph and what was kept fp32 (and why), from the largest |x| measured at the input of each
    InstanceNormalization (`peaks`, by node name: norm_input_peaks)."""
    from onnxconverter_common import float16

    src = onnx.ModelProto()
    src.CopyFrom(model)
    ops = {n.op_type for n in src.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        for o in src.opset_import:
            if o.domain in ("", "ai.onnx") and o.version < QDQ_OPSET:
                o.version = QDQ_OPSET
    keep = sorted(n for n, p in peaks.items() if p > NORM_SAFE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns about every value it clamps to fp16's range
        half = float16.convert_float_to_float16(src, keep_io_types=True, node_block_list=keep,
                                                op_block_list=float16.DEFAULT_OP_BLOCK_LIST)
    info = {"io": "float32 inputs and outputs, Cast to/from fp16 inside",
            "norms_kept_fp32": keep, "norm_input_peak": max(peaks.values(), default=0.0),
            "norm_safe_limit": NORM_SAFE, "opset": max(o.version for o in half.opset_import if o.domain in ("", "ai.onnx"))}
    return half, info
