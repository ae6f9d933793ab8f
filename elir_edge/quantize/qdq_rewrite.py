"""Rewrite MCT's exported Q/DQ graph into the form TensorRT's explicit quantization wants.

MCT quantizes the output of every op and exports weights as float initializers behind a
QuantizeLinear. The passes below (each one job, in this order) produce: int8 weight initializers
(a quarter of the float bytes), activation Q/DQ only in front of Conv/ConvTranspose, chosen convs
kept in float, and weights shared across the unrolled steps stored once. The ONNX Runtime CPU variant
also keeps Q/DQ on conv outputs (ONNX Runtime only fuses DQ->Conv->Q into QLinearConv) and expresses
the int8 grid as uint8 with zero point 128, which its fast x86 kernels (U8S8) want, over 7-bit weights
(reduce_range) so that those kernels cannot saturate on CPUs without VNNI, or over full 8-bit weights for
CPUs with an int8 dot-product instruction (VNNI/AMX), where nothing saturates. The OpenVINO variant is the
latter kept in int8 on MCT's grids: no zero points, which OpenVINO's fastest int8 kernels want.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

CONVS = {"Conv", "ConvTranspose"}


def constants_to_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    for n in [n for n in g.node if n.op_type == "Constant"]:
        value = next((a for a in n.attribute if a.name == "value"), None)
        if value is None:
            continue
        t = onnx.TensorProto()
        t.CopyFrom(value.t)
        t.name = n.output[0]
        g.initializer.append(t)
        g.node.remove(n)


def _maps(model: onnx.ModelProto):
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    return producer, consumers, {i.name: i for i in g.initializer}


def conv_block(node_name: str) -> str:
    """The module path of a conv node as MCT names it (dots become underscores), e.g. steps_0_final_proj."""
    return node_name.strip("/").split("/")[0]


def select_convs(model: onnx.ModelProto, patterns: list[str]) -> set[str]:
    """Conv node names whose module path matches a pattern like `enc.layers.0` or `steps.*.final_proj`,
    or lies inside a matching module (`steps.1` selects all of step 1). A conv that MCT collapsed from
    two (`A_B_collapsed`) matches a pattern for either of them."""
    pats = [p.replace(".", "_") for p in patterns]

    def hit(block: str, p: str) -> bool:
        return (fnmatch.fnmatchcase(block, p) or fnmatch.fnmatchcase(block, f"{p}_*")
                or fnmatch.fnmatchcase(block, f"*_{p}_collapsed"))

    return {n.name for n in model.graph.node if n.op_type in CONVS and any(hit(conv_block(n.name), p) for p in pats)}


def keep_float(model: onnx.ModelProto, conv_names: set[str]) -> None:
    """Bypass the input and weight Q/DQ of the named convs (their float tensors feed them directly), through
    every Q/DQ pair on the way: MCT's export chains two where onnxsim removes the one-input Concat between them."""
    producer, _, _ = _maps(model)
    for n in model.graph.node:
        if n.name in conv_names:
            for slot in (0, 1):
                n.input[slot] = _before_qdq(n.input[slot], producer)


def _before_qdq(x: str, producer: dict) -> str:
    """The tensor a chain of Q/DQ pairs that ends in `x` starts from (`x` itself without one)."""
    while (dq := producer.get(x)) is not None and dq.op_type == "DequantizeLinear" and \
            (q := producer.get(dq.input[0])) is not None and q.op_type == "QuantizeLinear":
        x = q.input[0]
    return x


def fold_weight_quantizers(model: onnx.ModelProto, weight_bits: int = 8) -> None:
    """QuantizeLinear(float initializer) -> an int8 initializer (round half to even, saturate).

    weight_bits=7 is ONNX Runtime's `reduce_range`: values in [-64, 63] with doubled scales. Its U8S8
    kernels on x86 CPUs without VNNI (AVX2, AVX-512F) sum u8*s8 pairs in 16 bits with saturation;
    255*127*2 overflows, 255*64*2 does not. Measured on an AVX2 machine: 8-bit weights 23 dB vs float."""
    _, consumers, init = _maps(model)
    g = model.graph
    widen = 2 ** (8 - weight_bits)
    for q in [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] in init]:
        w = numpy_helper.to_array(init[q.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(init[q.input[1]]).astype(np.float64) * widen
        zp = numpy_helper.to_array(init[q.input[2]]) if len(q.input) > 2 and q.input[2] else np.int8(0)
        axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
        if widen > 1:  # the dequantizers read the widened scale
            name = f"{q.input[1]}_{weight_bits}bit"
            if name not in init:  # weights shared by the unrolled steps share their scale
                init[name] = numpy_helper.from_array(scale.astype(np.float32), name)
                g.initializer.append(init[name])
            for dq in consumers[q.output[0]]:
                dq.input[1] = name
        if scale.size > 1:
            shape = [1] * w.ndim
            shape[axis] = -1
            scale, zpb = scale.reshape(shape), zp.astype(np.float64).reshape(shape)
        else:
            zpb = np.float64(zp)
        info = np.iinfo(zp.dtype)
        qw = np.clip(np.rint(w / scale) + zpb, info.min // widen, info.max // widen).astype(zp.dtype)
        g.initializer.append(numpy_helper.from_array(qw, q.output[0]))
        g.node.remove(q)


def prune_activation_qdq(model: onnx.ModelProto, keep_conv_outputs: bool = False) -> None:
    """Activation Q/DQ stays only where a Conv/ConvTranspose reads it (and, with `keep_conv_outputs`,
    where one writes it); every other consumer reads the float tensor (no Q/DQ around norms, sigmoids,
    adds, concats, or on the output)."""
    producer, consumers, init = _maps(model)
    g = model.graph
    outputs = {o.name for o in g.output}
    for dq in [n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] not in init]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        src = q.input[0]
        if keep_conv_outputs and src in producer and producer[src].op_type in CONVS:
            continue
        users = consumers[dq.output[0]]
        for u in users:
            if u.op_type not in CONVS or u.input[0] != dq.output[0]:
                for i, name in enumerate(u.input):
                    if name == dq.output[0]:
                        u.input[i] = src
        if dq.output[0] in outputs:  # the graph output keeps its name, now a float copy
            dq.op_type, dq.domain = "Identity", ""
            del dq.input[1:]
            dq.input[0] = src
            del dq.attribute[:]
    remove_dead_nodes(model)


def remove_dead_nodes(model: onnx.ModelProto) -> None:
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(n.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    used = {i for n in g.node for i in n.input}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)


def dedupe_initializers(model: onnx.ModelProto) -> None:
    """Identical initializers (the weights every unrolled step shares) become one."""
    g = model.graph
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        key = (arr.dtype.str, arr.shape, hashlib.sha1(arr.tobytes()).hexdigest())
        if key in first:
            rename[t.name] = first[key]
        else:
            first[key] = t.name
    for n in g.node:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    remove_dead_nodes(model)


def to_uint8_activations(model: onnx.ModelProto) -> None:
    """Activation Q/DQ as uint8 with zero point 128: the identical grid (q_u8 = q_s8 + 128)."""
    _, _, init = _maps(model)
    shifted = {}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in init and len(n.input) > 2:
            zp_name = n.input[2]
            if zp_name not in shifted:
                zp = numpy_helper.to_array(init[zp_name])
                shifted[zp_name] = f"{zp_name}_u8"
                model.graph.initializer.append(numpy_helper.from_array(
                    (zp.astype(np.int16) + 128).astype(np.uint8), shifted[zp_name]))
            n.input[2] = shifted[zp_name]
    remove_dead_nodes(model)


def _dq_of(x: str, producer: dict, consumers: dict) -> str | None:
    """A DequantizeLinear output carrying tensor `x` on its Q/DQ grid: x itself if a DQ makes it, else the DQ of a
    QuantizeLinear that reads x, else None."""
    p = producer.get(x)
    if p is not None and p.op_type == "DequantizeLinear":
        return x
    return next((d.output[0] for q in consumers[x] if q.op_type == "QuantizeLinear" and q.input[0] == x
                 for d in consumers[q.output[0]] if d.op_type == "DequantizeLinear"), None)


def quantized_readers(model: onnx.ModelProto) -> None:
    """A tensor that a convolution reads quantized is read quantized by its other readers too (a residual Add,
    the GroupNorm after it, a Concat), so ONNX Runtime runs QLinearAdd / QLinearConcat and OpenVINO keeps the
    tensor int8 (no float copy in another layout) between convolutions. The Euler state is the exception: each
    step adds its update to the float state, as TensorRT's form does; quantizing the state at every step cost
    0.7 dB on the bundled model (42.5 against 43.2 dB, benchmarks/RESULTS.md), for no measurable speed."""
    producer, consumers, init = _maps(model)
    state = set(latent_tensors(model))
    for node in (n for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")):
        for i, x in enumerate(node.input):
            if x not in init and x not in state:
                node.input[i] = _dq_of(x, producer, consumers) or x


def quantized_concats(model: onnx.ModelProto) -> None:
    """Each float input of a Concat whose one reader is a QuantizeLinear is quantized once, where it is made, on
    the widest grid of the concats that read it (`seen_grids` then narrows it to what it spans), so ONNX Runtime
    runs QLinearConcat: a dense block's SiLU outputs are concatenated up to four times, each once quantized
    instead of once per concat (bundled model: ORT 41.1 -> 39.9 ms, the same PSNR, benchmarks/RESULTS.md)."""
    producer, consumers, init = _maps(model)
    g = model.graph

    def grid(concat: onnx.NodeProto) -> onnx.NodeProto | None:
        users = consumers[concat.output[0]]
        return users[0] if concat.op_type == "Concat" and len(users) == 1 and users[0].op_type == "QuantizeLinear" \
            else None

    made: dict[str, str] = {}
    for concat in [n for n in g.node if grid(n) is not None]:
        for i, x in enumerate(concat.input):
            p = producer.get(x)
            if x in init or (p is not None and p.op_type == "DequantizeLinear"):
                continue
            if x not in made:
                q = max((grid(c) for c in consumers[x] if grid(c) is not None),
                        key=lambda q: float(numpy_helper.to_array(init[q.input[1]])))
                made[x] = f"{x}_concat_dq"
                nodes = [helper.make_node("QuantizeLinear", [x, *q.input[1:]], [f"{x}_concat_q"],
                                          name=f"{x}_concat_q"),
                         helper.make_node("DequantizeLinear", [f"{x}_concat_q", *q.input[1:]], [made[x]],
                                               name=f"{x}_concat_dq")]
                at = list(g.node).index(p) + 1 if p is not None else 0
                for k, n in enumerate(nodes):
                    g.node.insert(at + k, n)
            concat.input[i] = made[x]


def unsigned_relus(model: onnx.ModelProto) -> None:
    """A ReLU between a Conv (or an Add) and the QuantizeLinear of its output: the Q/DQ of its output become uint8
    with zero point 0 and half the scale (the same [0, t] range MCT chose, at twice the resolution), and a conv
    output's own Q/DQ before it goes. ONNX Runtime then folds the ReLU into that Q and the Conv or Add into
    QLinearConv / QLinearAdd, with no float round trip between (its ReluQuantFusion needs zero point 0)."""
    producer, consumers, init = _maps(model)
    g = model.graph
    zero = "relu_zero_point_u8"
    g.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), zero))
    for relu in [n for n in g.node if n.op_type == "Relu"]:
        users = consumers[relu.output[0]]
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            continue
        src = _lone_conv_output(relu.input[0], producer, consumers)
        if src is None and not (relu.input[0] in producer and producer[relu.input[0]].op_type == "Add"
                                and len(consumers[relu.input[0]]) == 1):
            continue
        relu.input[0] = src or relu.input[0]
        q = users[0]
        scale = f"{q.output[0]}_scale_u8"
        g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(init[q.input[1]]) / np.float32(2), scale))
        for n in [q, *consumers[q.output[0]]]:
            n.input[1], n.input[2] = scale, zero
    remove_dead_nodes(model)


def _lone_conv_output(x: str, producer: dict, consumers: dict) -> str | None:
    """The float output of a Conv/ConvTranspose when `x` is it or its DQ(Q(.)), read by nothing else, else None
    (MCT leaves unquantized the output of a convolution a ReLU alone reads: mct_lean.grids_where_kept)."""
    if len(consumers[x]) != 1:
        return None
    dq = producer.get(x)
    if dq is not None and dq.op_type == "DequantizeLinear":
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(consumers[q.output[0]]) != 1:
            return None
        x = q.input[0]
    conv = producer.get(x)
    return x if conv is not None and conv.op_type in CONVS else None


def _on_signed_grid(n: onnx.NodeProto, init: dict) -> bool:
    """An activation QuantizeLinear to uint8 with zero point 128: MCT's signed grid, shifted."""
    if n.op_type != "QuantizeLinear" or n.input[0] in init or len(n.input) < 3:
        return False
    zp = numpy_helper.to_array(init[n.input[2]])
    return zp.dtype == np.uint8 and int(zp) == 128


def signed_grid_tensors(model: onnx.ModelProto) -> list[str]:
    """The float tensors a uint8 activation QuantizeLinear reads on MCT's signed grid (zero point 128)."""
    _, _, init = _maps(model)
    return sorted({n.input[0] for n in model.graph.node if _on_signed_grid(n, init)})


def seen_grids(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> None:
    """Each uint8 activation Q/DQ on MCT's signed grid [-128 s, 127 s] takes the part of it that its tensor was
    seen to span on the calibration images (zero kept inside, so padding and ReLU stay exact): MCT's clipping or
    less, at up to twice the resolution (a SiLU's output, >= -0.28, wasted nearly half the signed grid). ONNX
    Runtime's and OpenVINO's uint8 kernels take any zero point."""
    producer, consumers, init = _maps(model)
    g = model.graph
    for q in [n for n in g.node if n.input and n.input[0] in ranges and _on_signed_grid(n, init)]:
        scale = float(numpy_helper.to_array(init[q.input[1]]))
        lo, hi = ranges[q.input[0]]
        lo, hi = min(max(lo, -128 * scale), 0.0), max(min(hi, 127 * scale), 0.0)
        seen = np.float32((hi - lo) / 255)
        if not 0 < seen < scale:
            continue
        names = (f"{q.output[0]}_scale_seen", f"{q.output[0]}_zero_point_seen")
        g.initializer.extend([numpy_helper.from_array(seen, names[0]),
                              numpy_helper.from_array(np.array(np.clip(np.rint(-lo / seen), 0, 255), np.uint8), names[1])])
        for n in [q, *(d for d in consumers[q.output[0]] if d.op_type == "DequantizeLinear")]:
            n.input[1], n.input[2] = names
    remove_dead_nodes(model)


TARGETS = {"tensorrt": 8, "cpu": 7, "cpu_w8": 8, "cpu_s8": 8}  # target -> weight bits


def rewrite(model: onnx.ModelProto, float_convs: set[str], target: str) -> None:
    """All passes in order on MCT's export, for `target`.

    tensorrt: int8 zero point 0, activation Q/DQ only at conv inputs (NVIDIA's recommended placement).
    cpu: Q/DQ at conv inputs and outputs, so ONNX Runtime fuses DQ->Conv->Q into QLinearConv, in uint8
    (its fast x86 kernels are U8S8), with 7-bit weights so those kernels cannot saturate on any x86 CPU; every
    reader of a quantized tensor but the Euler state reads it quantized (adds and concats run as QLinearAdd /
    QLinearConcat) and ReLUs fold into the Q after them (unsigned grid), so the blocks stay in uint8 between
    convolutions.
    cpu_w8: the same with 8-bit weights, for CPUs whose int8 dot product does not saturate (VNNI/AMX).
    cpu_s8: the same Q/DQ as cpu_w8, kept in int8 on MCT's symmetric grids (zero point 0; uint8 zero point 0 after
    ReLU): OpenVINO runs a convolution whose input and output have no zero point on its plain int8 kernels, and
    one with zero points on slower ones that compensate for them (the bundled model on an AMX Xeon:
    benchmarks/RESULTS.md); ONNX Runtime's x86 kernels want uint8 and run it slowly."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}")
    del model.graph.value_info[:]  # shape annotations of MCT's tensors; stale after the rewrite
    constants_to_initializers(model)
    keep_float(model, float_convs)
    fold_weight_quantizers(model, weight_bits=TARGETS[target])
    cpu = target.startswith("cpu")
    prune_activation_qdq(model, keep_conv_outputs=cpu)
    dedupe_initializers(model)
    if cpu:
        if target != "cpu_s8":
            to_uint8_activations(model)
        quantized_readers(model)
        quantized_concats(model)
        unsigned_relus(model)


STEP_CONV = re.compile(r"steps[._](\d+)[._/]first_proj")


def latent_tensors(model: onnx.ModelProto) -> list[str]:
    """Float tensor names of the latent before each Euler step and after the last (K+1 names):
    the float input of each step's first_proj conv, and the decoder's input (the Div before Tanh)."""
    producer, consumers, _ = _maps(model)
    found = {}
    for n in model.graph.node:
        m = STEP_CONV.search(n.name)
        if n.op_type == "Conv" and m:
            src = n.input[0]
            dq = producer.get(src)
            if dq is not None and dq.op_type == "DequantizeLinear":
                src = producer[dq.input[0]].input[0]
            found[int(m.group(1))] = src
    final = next(n.input[0] for n in model.graph.node
                 if n.op_type == "Div" and any(c.op_type == "Tanh" for c in consumers[n.output[0]]))
    return [found[k] for k in sorted(found)] + [final]
