"""Reading TensorRT's engine inspector (runtime/layer_precision.py) on the JSON NVIDIA documents, and through
the engine runner and bench on the stand-in GPU: which precision each layer runs in, and an int8 graph that
got no INT8 kernel said so."""

from __future__ import annotations

import json

import fake_gpu
import numpy as np
import pytest

from elir_edge.bench.stage import _layer_figures
from elir_edge.runtime.engine import EngineRunner
from elir_edge.runtime.layer_precision import read_inspector

# The kDETAILED example of NVIDIA's developer guide ("Engine Inspector"), TensorRT 10's schema.
GUIDE_LAYER = {"Name": "node_of_gpu_0/res4_0_branch2a_1 + node_of_gpu_0/res4_0_branch2a_bn_1",
               "LayerType": "CaskConvolution",
               "Inputs": [{"Name": "gpu_0/res3_3_branch2c_bn_3", "Dimensions": [16, 512, 28, 28],
                           "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
               "Outputs": [{"Name": "gpu_0/res4_0_branch2a_bn_2", "Dimensions": [16, 256, 28, 28],
                            "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
               "ParameterType": "Convolution", "Kernel": [1, 1]}


def _layer(kind, dtype, schema=10, parameter=None, out=None, **extra):
    def t(d):
        return {"Format/Datatype": d} if schema == 10 else {"Datatype": d, "Format": "Row major linear (kLINEAR)"}

    return {"Name": f"{kind}-{dtype}", "LayerType": kind, "Inputs": [t(dtype)], "Outputs": [t(out or dtype)],
            **({"ParameterType": parameter} if parameter else {}), **extra}


def test_layers_are_counted_by_the_type_their_kernel_reads_in_every_schema():
    layers = [GUIDE_LAYER,  # TensorRT 10, NVIDIA's example
              _layer("CaskConvolution", "Int8", 11, "Convolution", out="Half"),  # TensorRT 11: reads INT8
              _layer("kgen", "Half", 11, Metadata="[ONNX Layer: /enc/conv_in/Conv]"),  # Myelin: named by its node
              _layer("CaskDeconvolution", "Channel major FP16 format where channel % 8 == 0", 10, "Deconvolution"),
              _layer("correlation", "Half", 10), _layer("PointWiseV2", "Float", 11),
              _layer("kgen", "BFloat16", 11, Metadata="[ONNX Layer: /enc/act/Mul]"),
              _layer("Reformat", "Row major linear FP32 format"), _layer("NoOp", "Float", 11),
              _layer("Scale", "Float", 11, Origin="QDQ"), {"Name": "sync", "LayerType": "Signal"},
              {"Name": "sync", "LayerType": "wait"}]
    lp = read_inspector(json.dumps({"Layers": layers}))
    assert lp.layers == 12 and lp.unresolved == 0 and lp.note is None  # data movement, Q/DQ, sync: not compute
    assert lp.by_type == {"INT8": 2, "FP16": 3, "FP32": 1, "BF16": 1}
    assert lp.convolutions == {"INT8": 2, "FP16": 3}
    assert "7 compute layers" in lp.describe() and "convolutions (5): FP16 3, INT8 2" in lp.describe()
    assert not lp.no_int8_kernels()
    assert "no layer recognisable as a convolution" in read_inspector(
        json.dumps({"Layers": [_layer("kgen", "Half", 11)]})).describe()


def test_an_engine_without_int8_convolutions_or_without_details_is_said_so():
    floats = read_inspector(json.dumps({"Layers": [_layer("CaskConvolution", "Half", 11, "Convolution")]}))
    assert floats.no_int8_kernels()
    names = read_inspector(json.dumps({"Layers": ["conv1", "conv2"], "Bindings": ["lq", "hq"]}))
    assert names.layers == 2 and "ProfilingVerbosity.DETAILED" in names.note and not names.no_int8_kernels()
    assert "ProfilingVerbosity.NONE" in read_inspector('{"Layers": []}').note
    assert "no layer list (not JSON" in read_inspector("int8_conv\nfloat_conv").note  # ONELINE, not JSON
    dynamic = read_inspector(json.dumps({"Layers": [_layer("CaskConvolution", "N/A due to dynamic shapes")]}))
    assert dynamic.unresolved == 1 and "no tensor types" in dynamic.note and not dynamic.no_int8_kernels()


@pytest.fixture
def gpu(monkeypatch):
    return fake_gpu.install(monkeypatch)


def _runner(trt, tmp_path, **plan):
    meta = {"int8_flavour": "tensorrt (int8 zero point 0)", "task": "denoising", "image_size": "64x64"}
    return EngineRunner(trt, fake_gpu.make_plan(fake_gpu.qdq_conv_graph(), dynamic=True, **plan),
                        tmp_path / "m.rtx.engine", "TensorRT-RTX", meta=meta)


@pytest.mark.parametrize("rtx", [True, False])
def test_a_dynamic_engine_is_inspected_with_its_bound_shape(gpu, tmp_path, rtx):
    """The runner hands the inspector its context once a shape is bound: TensorRT 10 withholds a dynamic
    engine's whole Format/Datatype before that; after a run both give the graph's one INT8 and one FP32
    convolution (TensorRT-RTX's Myelin-style layers told by their ONNX node)."""
    fake, trt = gpu
    runner = _runner(trt if rtx else fake_gpu.full_tensorrt(fake), tmp_path, verbosity="DETAILED")
    if not rtx:
        assert runner.layer_precisions().note is not None  # no shape bound yet
    runner(np.zeros((1, 3, 64, 64), np.float32), None)
    lp = runner.layer_precisions()
    assert (lp.by_type, lp.convolutions, lp.unresolved) == ({"INT8": 1, "FP32": 1}, {"INT8": 1, "FP32": 1}, 0)
    assert _layer_figures(runner) == {"layers": lp.to_dict()}
    runner.close()


def test_an_int8_graph_given_float_kernels_is_flagged_in_its_bench_row(gpu, tmp_path):
    _, trt = gpu
    runner = _runner(trt, tmp_path, verbosity="DETAILED", int8_kernels=False)
    runner(np.zeros((1, 3, 64, 64), np.float32), None)
    figures = _layer_figures(runner)
    assert figures["layers"]["convolutions"] == {"FP16": 1, "FP32": 1}
    assert "TensorRT-RTX runs all 2 convolutions of this int8 graph in floating point" in figures["no_int8_kernels"]
    assert "--target tensorrt" in figures["no_int8_kernels"]
    runner.close()


def test_an_inspector_that_fails_costs_the_layer_counts_only(gpu, tmp_path, monkeypatch):
    _, trt = gpu
    runner = _runner(trt, tmp_path, verbosity="DETAILED")
    monkeypatch.setattr(fake_gpu.FakeInspector, "get_engine_information",
                        lambda self, fmt: (_ for _ in ()).throw(RuntimeError("Myelin inspector failed")))
    assert "RuntimeError: Myelin inspector failed" in runner.layer_precisions().note
    runner.close()


def test_the_counts_and_their_summary_worked_out_by_hand():
    """Each schema's tensor key on its own, a convolution told by its parameter type alone, layers without a
    type counted apart: the summary a bench row shows, word for word (issue 33: mutmut's survivors)."""
    from elir_edge.runtime.layer_precision import tensor_type

    assert tensor_type({"DataType": "Half"}) == "FP16" and tensor_type({"Format": "Row major linear Int8"}) == "INT8"
    assert tensor_type({"Datatype": "Float", "Format": "Int8"}) == "FP32"  # the data type first
    assert tensor_type({"Format/Datatype": "Row major linear FP32 format"}) == "FP32" and tensor_type({}) is None
    layers = [{"Name": "c", "LayerType": "Kernel", "ParameterType": "Convolution", "Inputs": [{"DataType": "Int8"}]},
              {"Name": "a", "Inputs": [{"Format": "Row major Int8"}]},  # no LayerType: still compute
              {"Name": "b", "LayerType": "PointWise", "Inputs": [{"Datatype": "Int8"}]},
              {"Name": "f", "LayerType": "PointWise", "Inputs": [{"Datatype": "Float"}]},
              {"Name": "u", "LayerType": "PointWise", "Inputs": [{"Datatype": "N/A due to dynamic shapes"}]},
              {"Name": "v", "LayerType": "PointWise"}]
    lp = read_inspector(json.dumps({"Layers": layers}))
    assert (lp.layers, lp.by_type, lp.convolutions, lp.unresolved, lp.note) == (6, {"INT8": 3, "FP32": 1},
                                                                                {"INT8": 1}, 2, None)
    assert lp.describe() == "4 compute layers: INT8 3, FP32 1; convolutions (1): INT8 1; 2 without a type"
    assert lp.to_dict() == {"layers": 6, "by_type": {"INT8": 3, "FP32": 1}, "convolutions": {"INT8": 1},
                            "unresolved": 2, "note": None, "summary": lp.describe()}
    plain = read_inspector(json.dumps({"Layers": [{"LayerType": "PointWise", "Inputs": [{"Datatype": "Half"}]}]}))
    assert plain.describe() == "1 compute layers: FP16 1; no layer recognisable as a convolution"
    assert not plain.no_int8_kernels()  # no convolution at all: nothing to say about INT8 kernels
    from elir_edge.runtime.layer_precision import LayerPrecisions

    assert LayerPrecisions(3).describe() == "0 compute layers: none; no layer recognisable as a convolution"


def test_an_inspector_without_figures_says_why_word_for_word():
    text = "x" * 70
    bad = read_inspector(text)
    assert bad.layers == 0 and bad.note == f"the engine inspector gave no layer list (not JSON: {'x' * 60!r}...)"
    assert bad.describe() == bad.note and bad.to_dict()["summary"] == bad.note and not bad.no_int8_kernels()
    empty = read_inspector('{"Layers": []}')
    assert empty.layers == 0 and empty.to_dict()["layers"] == 0
    assert empty.note == ("the engine lists no layers (built with ProfilingVerbosity.NONE): rebuild it with "
                          "`elir-edge build` to see its layer precisions")
    names = read_inspector('{"Layers": ["a", "b", "c"]}')
    assert names.layers == 3 and names.note == ("layer names only (built without ProfilingVerbosity.DETAILED): "
                                                "rebuild it with `elir-edge build` to see its layer precisions")
    untyped = read_inspector(json.dumps({"Layers": [{"LayerType": "PointWise"}, {"LayerType": "kgen"}]}))
    assert untyped.unresolved == 2 and untyped.note == "the inspector gave no tensor types for any layer"
    assert read_inspector("[1, 2]").note.startswith("the engine inspector gave no layer list (not JSON: '[1, 2]'")
