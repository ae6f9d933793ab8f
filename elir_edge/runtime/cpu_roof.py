"""What this CPU can do for ELIR, measured with the runtime itself: its SIMD features (the int8 dot-product
instruction decides whether int8 pays), and the GMAC/s ONNX Runtime reaches on the model's own dominant
convolution shapes in fp32 and in int8 (the CPU form's QLinearConv): the roof an artifact is held to."""

from __future__ import annotations

import copy
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from elir_edge.runtime.ort import ort_session_from_bytes

# /proc/cpuinfo flag -> what it means for convolutions
X86_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16", "amx_tile": "AMX"}
ARM_FEATURES = {"asimd": "NEON", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "SVE", "sve2": "SVE2",
                "bf16": "BF16"}
PAYS = 1.15  # int8:fp32 conv speed above which int8 is said to pay


def _cpuinfo(cpuinfo: str | None) -> list[tuple[str, str]]:
    """(key, value) of each line of /proc/cpuinfo's text, keys lower-case; this machine's by default."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    return [(key.strip().lower(), value) for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())]


def _flags(lines: list[tuple[str, str]]) -> frozenset[str]:
    return frozenset(f for key, value in lines if key in ("flags", "features") for f in value.split())


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """Every feature flag of the CPU (x86: 'flags', Arm: 'Features'); this machine's by default."""
    return _flags(_cpuinfo(cpuinfo))


def cpu_features(cpuinfo: str | None = None) -> dict:
    """CPU model, the features that matter here, and its int8 dot-product instruction (None when it has
    none), from the text of /proc/cpuinfo; this machine's by default."""
    lines = _cpuinfo(cpuinfo)
    model = next((v.strip() for k, v in lines if k in ("model name", "cpu model", "hardware") and v.strip()), "")
    arm = any(key in ("features", "cpu implementer") for key, _ in lines)
    flags = _flags(lines)
    table = ARM_FEATURES if arm else X86_FEATURES
    found = [name for flag, name in table.items() if flag in flags]
    if arm:
        int8 = "i8mm" if "i8mm" in flags else "dotprod" if "asimddp" in flags else None
    else:
        int8 = ("AMX-INT8" if "amx_int8" in flags else "AVX-512 VNNI" if "avx512_vnni" in flags
                else "AVX-VNNI" if "avx_vnni" in flags else None)
    return {"model": model, "isa": "arm64" if arm else "x86_64", "features": found, "int8_dot_product": int8}


def conv_shapes(model: onnx.ModelProto, top: int = 3) -> list[dict]:
    """The same-width, stride-1 3x3 convolution shapes that carry most of a static graph's MACs: (in, out, H, W,
    stride) with their share of those convs' MACs, largest first."""
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    weights.update({n.output[0]: list(a.t.dims) for n in model.graph.node if n.op_type == "Constant"
                    for a in n.attribute if a.name == "value"})
    producer = {o: n for n in model.graph.node for o in n.output}
    macs = defaultdict(int)
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        w = weights.get(n.input[1])
        source = producer.get(n.input[1])
        if w is None and source is not None and source.op_type == "DequantizeLinear":  # Q/DQ graphs
            w = weights.get(source.input[0])
        out = dims.get(n.output[0])
        if not w or not out or len(w) != 4 or len(out) != 4 or 0 in out:
            continue
        stride = next((a.ints[0] for a in n.attribute if a.name == "strides"), 1)
        if w[2:] == [3, 3]:
            if stride == 1 and w[0] == w[1]:  # the same-width convs that carry ELIR's compute
                macs[(w[1], w[0], out[2], out[3], 1)] += out[1] * out[2] * out[3] * w[1] * 9
    total = sum(macs.values()) or 1
    ranked = sorted(macs.items(), key=lambda kv: -kv[1])[:top]
    return [{"in": k[0], "out": k[1], "h": k[2], "w": k[3], "stride": k[4], "share": v / total} for k, v in ranked]


DEPTH = 6  # convs chained in the measured graph: ONNX Runtime's layout changes at its ends are amortized,
           # as they are inside the model


def _conv_graph(s: dict, int8: bool) -> bytes:
    """DEPTH chained 3x3 convs of shape `s` (stride 1), fp32, or as the CPU form writes them (u8 activations,
    zero point 128, 7-bit int8 weights, Q/DQ around every conv so ONNX Runtime fuses QLinearConv)."""
    rng = np.random.default_rng(0)
    c = s["in"]
    w = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = np.zeros(c, np.float32)
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, s["h"], s["w"]])
    y = helper.make_tensor_value_info(f"y{DEPTH}", TensorProto.FLOAT, None)
    inits, nodes = [numpy_helper.from_array(b, "b")], []
    if int8:
        scale = np.abs(w).reshape(c, -1).max(1) / 63
        inits += [numpy_helper.from_array(np.clip(np.rint(w / scale[:, None, None, None]), -64, 63).astype(np.int8), "wq"),
                  numpy_helper.from_array(scale.astype(np.float32), "ws"), numpy_helper.from_array(np.zeros(c, np.int8), "wz"),
                  numpy_helper.from_array(np.float32(0.02), "as"), numpy_helper.from_array(np.uint8(128), "az")]
        nodes.append(helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    prev = "x"
    for i in range(1, DEPTH + 1):
        if int8:
            nodes += [helper.make_node("QuantizeLinear", [prev, "as", "az"], [f"q{i}"]),
                      helper.make_node("DequantizeLinear", [f"q{i}", "as", "az"], [f"d{i}"])]
            prev = f"d{i}"
        nodes.append(helper.make_node("Conv", [prev, "w", "b"], [f"y{i}"], **conv))
        prev = f"y{i}"
    g = helper.make_graph(nodes, "convs", [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def conv_roof(shapes: list[dict], threads: int | None = None, seconds: float = 0.4) -> dict:
    """GMAC/s of ONNX Runtime on each shape, fp32 and int8, taking turns run by run; and the MAC-weighted
    roof of each precision (time-weighted, as the model would spend it)."""
    rows = []
    for s in shapes:
        x = {"x": np.random.default_rng(1).random((1, s["in"], s["h"], s["w"]), dtype=np.float32)}
        sessions = {p: ort_session_from_bytes(_conv_graph(s, p == "int8"), threads, spin=False) for p in ("fp32", "int8")}
        times = {p: [] for p in sessions}
        for sess in sessions.values():
            sess.run(None, x)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or min(len(t) for t in times.values()) < 5:
            for p, sess in sessions.items():
                t0 = time.perf_counter()
                sess.run(None, x)
                times[p].append(time.perf_counter() - t0)
        macs = DEPTH * s["in"] * s["in"] * 9 * s["h"] * s["w"]
        rows.append({**s, **{f"{p}_gmac_s": macs / np.median(t) / 1e9 for p, t in times.items()}})
    share = sum(r["share"] for r in rows) or 1

    def roof(p: str) -> float:  # harmonic mean weighted by MACs: the rate at which the model's convs would run
        return share / sum(r["share"] / r[f"{p}_gmac_s"] for r in rows)

    out = {"shapes": rows, "fp32_gmac_s": roof("fp32"), "int8_gmac_s": roof("int8")}
    out["int8_vs_fp32"] = out["int8_gmac_s"] / out["fp32_gmac_s"]
    return out


def int8_verdict(features: dict, ratio: float | None, size_ratio: float | None = None) -> str:
    """One line of two facts: what the int8:fp32 conv speed measured here says (pays or not), and what int8
    dot-product instruction the CPU has; never one given as the reason for the other."""
    size = f"; the int8 file is {size_ratio:.2f}x the size" if size_ratio else ""
    have = features.get("int8_dot_product")
    measured = f"int8 convolutions measured at {ratio:.2f}x the speed of fp32 here" if ratio else \
        "int8 convolutions not measured here"
    verdict = "int8 pays on this CPU" if ratio is not None and ratio >= PAYS else "int8 does not pay on this CPU"
    cpu = (f"the CPU has {have}" if have else
           f"the CPU has no int8 dot-product instruction (no VNNI/AMX; {', '.join(features.get('features', [])) or 'none'}), "
           "so CPUs with one, and GPUs (TensorRT), run int8 faster")
    return f"{verdict}: {measured}{size}. Apart from that measurement, {cpu}"


def measure_cpu(float_path: Path, threads: int | None = None, size_ratio: float | None = None) -> dict:
    """This CPU's features, its conv roof on the float graph's own dominant shapes, and the verdict line. The roof
    is measured once a process for given shapes and threads: the demo's quantize and then its bench, or a script
    that quantizes again and again, report one measurement, not seconds of the same one each."""
    shapes = conv_shapes(onnx.load(str(float_path), load_external_data=False))
    key = (json.dumps(shapes, sort_keys=True), threads)
    if key not in _ROOFS:
        _ROOFS[key] = conv_roof(shapes, threads)
    roof = copy.deepcopy(_ROOFS[key])
    features = cpu_features()
    return {**roof, "features": features, "verdict": int8_verdict(features, roof["int8_vs_fp32"], size_ratio)}


_ROOFS: dict[tuple[str, int | None], dict] = {}  # (shapes, threads) -> the roof measured in this process
