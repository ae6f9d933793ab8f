"""The TensorRT Q/DQ rules checker on hand-built good and deliberately broken graphs."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from elir_edge.quantize.qdq_rules import check


def _graph(act_zp=np.int8(0), act_scale=np.float32(0.05), w_scale=None, w_axis=0, w_dtype=np.int8,
           op="Conv", extra_nodes=(), bias_dq=False):
    cin, cout = 4, 6
    w_shape = (cout, cin, 3, 3) if op == "Conv" else (cin, cout, 4, 4)
    ch = w_shape[w_axis]
    w_scale = np.full(ch, 0.01, np.float32) if w_scale is None else w_scale
    inits = [
        numpy_helper.from_array(np.array(act_scale, np.float32), "a_s"),
        numpy_helper.from_array(np.array(act_zp), "a_zp"),
        numpy_helper.from_array(np.ones(w_shape, w_dtype), "w_q"),
        numpy_helper.from_array(w_scale, "w_s"),
        numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), "w_zp"),
        numpy_helper.from_array(np.zeros(cout, np.int32 if bias_dq else np.float32), "b"),
        numpy_helper.from_array(np.array(1.0, np.float32), "b_s"),
        numpy_helper.from_array(np.array(0, np.int32), "b_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_s", "a_zp"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "a_s", "a_zp"], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["wd"], name="dq_w", axis=w_axis),
    ]
    bias = "b"
    if bias_dq:
        nodes.append(helper.make_node("DequantizeLinear", ["b", "b_s", "b_zp"], ["bd"], name="dq_b"))
        bias = "bd"
    nodes.append(helper.make_node(op, ["xd", "wd", bias], ["y"], name="conv"))
    nodes.extend(extra_nodes)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _rules(model, **kw):
    return sorted({v.rule for v in check(model, **kw)})


def test_good_graphs_pass():
    assert check(_graph()) == []
    assert check(_graph(op="ConvTranspose", w_axis=1)) == []
    assert check(_graph(w_scale=np.array([0.01], np.float32))) == []  # per-tensor weights are fine


def test_uint8_activation_zero_point_is_refused():
    assert _rules(_graph(act_zp=np.uint8(128))) == ["R1"]
    assert _rules(_graph(act_zp=np.int8(3))) == ["R1"]


def test_bad_scales():
    assert "R2" in _rules(_graph(act_scale=np.float32(0.0)))
    assert "R2" in _rules(_graph(act_scale=np.float32(np.inf)))


def test_per_channel_activation_is_refused():
    assert "R3" in _rules(_graph(act_scale=np.full(4, 0.1, np.float32)))


def test_weight_axis_rules():
    assert _rules(_graph(op="ConvTranspose", w_axis=0)) == ["R4"]  # ConvTranspose wants axis 1
    assert _rules(_graph(w_dtype=np.float32)) == ["R4"]


def test_int32_bias_dq_is_refused():
    assert "R6" in _rules(_graph(bias_dq=True))


def test_qdq_around_norm_sigmoid_tanh():
    extra = [helper.make_node("Sigmoid", ["xd"], ["s"], name="sig")]
    assert _rules(_graph(extra_nodes=extra)) == ["R5"]
    extra = [helper.make_node("Tanh", ["y"], ["t"], name="tanh"),
             helper.make_node("QuantizeLinear", ["t", "a_s", "a_zp"], ["tq"], name="q_t")]
    assert _rules(_graph(extra_nodes=extra)) == ["R5"]


def test_unquantized_conv_needs_to_be_declared():
    model = _graph()
    conv = next(n for n in model.graph.node if n.name == "conv")
    conv.input[0] = "x"
    assert _rules(model) == ["R7"]
    assert check(model, float_convs={"conv"}) == []


def test_concat_scales_must_match():
    extra = [helper.make_node("QuantizeLinear", ["y", "w_s0", "a_zp"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "w_s0", "a_zp"], ["yd"], name="dq_y"),
             helper.make_node("Concat", ["xd", "yd"], ["c"], name="cat", axis=1)]
    model = _graph(extra_nodes=extra)
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.07, np.float32), "w_s0"))
    assert _rules(model) == ["R8"]
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array(0.05, np.float32), "w_s0"))
    assert check(model) == []
