"""NVIDIA's own parser and builder (TensorRT-RTX, installed by the README's command) on every graph kind
elir-edge writes, for the RTX 2080 Ti (SM75) and an Ampere RTX card (SM86) in one plan; the CPU form
refused; our Q/DQ checker in agreement with NVIDIA's parser; the TensorRT target's builder logic."""

from __future__ import annotations

import json
import shutil

import fake_gpu
import numpy as np
import onnx
import pytest
from conftest import one_line_error

from elir_edge.cli import main
from elir_edge.engines import BuildOptions, build_engine
from elir_edge.engines.build import BuilderMissing, BuildError
from elir_edge.exporter import ExportOptions, export_checkpoint

tensorrt_rtx = pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is installed by README's install command")

TURING_AND_AMPERE = ["75", "86"]


@pytest.fixture(scope="module")
def graphs(tiny_quantized, tmp_path_factory):
    """Every kind of graph elir-edge writes, small."""
    folder = tiny_quantized[0]
    tmp = tmp_path_factory.mktemp("graphs")
    ckpt = next(folder.parent.glob("*.pth"))
    kinds = {name: folder / f"{name}.onnx" for name in ("model", "model_fp16", "model_int8", "model_int8_fp16")}
    for name, extra in (("baked", dict(baked_noise=True, seed=3)), ("batch2", dict(batch=2)),
                        ("dynamic", dict(dynamic=True))):
        export_checkpoint(ckpt, ExportOptions(task="denoising", steps=2, image_size=(64, 64), output=tmp / name,
                                              **extra), quiet=True)
        kinds[name] = tmp / name / "model.onnx"
        kinds[f"{name}_fp16"] = tmp / name / "model_fp16.onnx"
    return kinds


@pytest.mark.parametrize("kind", ["model", "model_fp16", "model_int8", "model_int8_fp16", "baked", "baked_fp16",
                                  "batch2", "batch2_fp16", "dynamic", "dynamic_fp16"])
def test_every_graph_kind_builds_for_turing_and_ampere(graphs, kind, tmp_path):
    out = tmp_path / f"{kind}.rtx.engine"
    m = build_engine(graphs[kind], BuildOptions(sms=TURING_AND_AMPERE, output=out), quiet=True)
    assert out.stat().st_size == m["bytes"] > 10_000 and m["layers"] > 50
    assert m["builder"] == "tensorrt-rtx" and m["target_sms"] == TURING_AND_AMPERE
    assert m["profiling_verbosity"] == "detailed"  # NVIDIA's builder took it ahead of time, without a GPU
    assert json.loads((tmp_path / f"{kind}.rtx.engine.json").read_text())["engine_sha256"] == m["engine_sha256"]
    # TF32 is on by default in TensorRT-RTX too, and SM86 is Ampere: fp32 layers may compute in TF32 there
    want = {"model": "fp32 (TF32 allowed)", "model_fp16": "fp16", "model_int8": "int8 + fp32 (TF32 allowed)",
            "model_int8_fp16": "int8 + fp16"}
    assert m["precision"] == want.get(kind, "fp16" if kind.endswith("fp16") else "fp32 (TF32 allowed)")
    # NVIDIA's TensorRT-RTX matrix lists FP32 and FP16 for SM75 and SM86, INT8 convolutions for neither
    if kind.startswith("model_int8"):
        assert m["support"] == ["INT8 on Turing is not in TensorRT-RTX's support matrix: unverified",
                                "INT8 convolutions on SM86 are not in TensorRT-RTX's support matrix (it lists INT8 "
                                "weight-only GEMM): unverified"]
    else:
        assert len(m["support"]) == 1 and m["support"][0].startswith("listed in NVIDIA's matrix")
    if kind.startswith("dynamic"):
        assert m["profile"]["lq"] == [[1, 3, 32, 32], [1, 3, 64, 64], [4, 3, 128, 128]]
        assert m["profile"]["eps"][2] == [4, 16, 16, 16]


def test_the_cpu_form_is_refused_naming_the_node(tiny_quantized, tmp_path, capsys):
    graph = tiny_quantized[0] / "model_int8_cpu.onnx"
    out = tmp_path / "cpu.rtx.engine"
    code = main(["build", str(graph), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "NVIDIA's ONNX parser refused node" in err and "QuantizeLinear" in err
    assert "zero point" in err.lower() and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def _nvidia_refuses(model: onnx.ModelProto, tmp_path) -> bool:
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    try:
        build_engine(path, BuildOptions(output=tmp_path / "g.engine"), quiet=True)
    except BuildError:
        return True
    return False


def _broken_graphs():
    from onnx import helper, numpy_helper
    from test_qdq_rules import _graph

    cases = {"good": _graph(), "good ConvTranspose": _graph(op="ConvTranspose", w_axis=1),
             "per-tensor weights": _graph(w_scale=np.array([0.01], np.float32)),
             "uint8 zero point": _graph(act_zp=np.uint8(128)), "non-zero int8 zero point": _graph(act_zp=np.int8(3)),
             "zero scale": _graph(act_scale=np.float32(0.0)), "infinite scale": _graph(act_scale=np.float32(np.inf)),
             "ConvTranspose scales on axis 0": _graph(op="ConvTranspose", w_axis=0),
             "float weight behind DQ": _graph(w_dtype=np.float32), "int32 bias DQ": _graph(bias_dq=True),
             "5 scales for 6 channels": _graph(w_scale=np.full(5, 0.01, np.float32)),
             "DQ into Sigmoid": _graph(extra_nodes=[helper.make_node("Sigmoid", ["xd"], ["s"], name="sig")])}
    m = _graph(act_scale=np.full(4, 0.1, np.float32))
    for i in m.graph.initializer:
        if i.name == "a_zp":
            i.CopyFrom(numpy_helper.from_array(np.zeros(4, np.int8), "a_zp"))
    for n in m.graph.node:
        if n.name in ("q_x", "dq_x"):
            n.attribute.append(helper.make_attribute("axis", 1))
    cases["per-channel activations"] = m
    m = _graph()
    next(n for n in m.graph.node if n.name == "conv").input[0] = "x"
    cases["conv without activation DQ"] = m
    return cases


@pytest.mark.parametrize("name", list(_broken_graphs()))
def test_checker_and_nvidias_parser_agree(name, tmp_path):
    """What our checker calls `refused` is exactly what NVIDIA's parser refuses; every broken graph gets at
    least advice from the checker."""
    from elir_edge.quantize.qdq_rules import check

    model = _broken_graphs()[name]
    violations = check(model)
    assert any(v.refused for v in violations) == _nvidia_refuses(model, tmp_path), violations
    assert bool(violations) == (not name.startswith(("good", "per-tensor weights")))


def test_external_weights_are_found(tiny_quantized, tmp_path):
    """Defect 9: the parser reads the file itself, so weights saved beside it are found."""
    model = onnx.load(str(tiny_quantized[0] / "model.onnx"))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.weights",
              size_threshold=0)
    assert (tmp_path / "ext.weights").stat().st_size > (tmp_path / "ext.onnx").stat().st_size
    m = build_engine(tmp_path / "ext.onnx", BuildOptions(output=tmp_path / "ext.engine"), quiet=True)
    assert m["layers"] > 50


def test_build_bad_input(tiny_quantized, tmp_path, capsys, monkeypatch):
    graph = str(tiny_quantized[0] / "model.onnx")
    assert "pick from those" in one_line_error(capsys, ["build", graph, "--sm", "90", "-o", str(tmp_path / "e")])
    # an engine elir-edge could not open again (open_runner knows engines by .engine/.plan/.trt) is refused
    assert "name the engine file *.engine" in one_line_error(capsys, ["build", graph, "-o", str(tmp_path / "e")])
    try:
        import tensorrt  # noqa: F401
    except ImportError:  # here: no TensorRT (on a GPU machine with it, this build would simply work)
        msg = one_line_error(capsys, ["build", graph, "--target", "tensorrt", "-o", str(tmp_path / "e.trt")])
        assert "TensorRT is not installed" in msg
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(capsys, ["build", graph, "-o", str(tmp_path / "file" / "e.engine")])
    assert "is the input graph itself" in one_line_error(capsys, ["build", graph, "-o", graph])
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    assert "not a readable ONNX" in one_line_error(capsys, ["build", str(tmp_path / "junk.onnx"), "-o", str(tmp_path / "e")])
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda n, *a, **k: (_ for _ in ()).throw(ImportError(n))
                        if n == "tensorrt_rtx" else real_import(n, *a, **k))
    assert "pip install 'elir-edge[rtx]'" in one_line_error(capsys, ["build", graph, "-o", str(tmp_path / "e.engine")])
    assert not list(tmp_path.glob("e*"))


def test_build_cli_table(tiny_quantized, tmp_path, capsys):
    src = tmp_path / "m.onnx"
    shutil.copy(tiny_quantized[0] / "model_int8_fp16.onnx", src)
    assert main(["build", str(src), "--sm", "75", "--sm", "sm_86"]) == 0
    out = capsys.readouterr()
    assert "tensorrt-rtx" in out.out and "SM75, SM86" in out.out and "int8 + fp16" in out.out
    assert (tmp_path / "m.rtx.engine").is_file() and "elapsed" in out.err  # builder phases with elapsed time


# the TensorRT target's builder logic (defects 1 and 3), on a stand-in `tensorrt` -------------------

@pytest.mark.parametrize("version, fp16_flag_exists", [("10.8.0", True), ("11.1.0", False)])
def test_1_strongly_typed_and_the_fp16_flag(tiny_quantized, tmp_path, monkeypatch, version, fp16_flag_exists):
    """Strongly typed from 10.0 on; the FP16 builder flag (weakly typed) works where the builder has it."""
    import sys

    from elir_edge.engines.tensorrt import build_tensorrt

    fake_gpu.install(monkeypatch)
    trt = fake_gpu.fake_tensorrt_builder(version, fp16_flag_exists)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    graph = tiny_quantized[0] / "model.onnx"
    _, m = build_tensorrt(graph, BuildOptions(target="tensorrt", output=tmp_path / "a.trt"), quiet=True)
    assert trt.seen["network_flags"] == 1 << (1 if version.startswith("10.") else 0) and m["strongly_typed"]  # 10.8 too
    if fp16_flag_exists:
        _, m = build_tensorrt(graph, BuildOptions(target="tensorrt", output=tmp_path / "b.trt"), quiet=True,
                              fp16_flag=True)
        assert trt.seen["network_flags"] == 0 and trt.seen["builder_flags"] == {0} and not m["strongly_typed"]
    else:
        with pytest.raises(BuildError, match="strongly typed networks only: build model_fp16.onnx"):
            build_tensorrt(graph, BuildOptions(target="tensorrt", output=tmp_path / "b.trt"), quiet=True,
                           fp16_flag=True)


def test_3_a_timing_cache_from_another_gpu_is_dropped(tiny_quantized, tmp_path, monkeypatch, capsys):
    import sys

    from elir_edge.engines.tensorrt import build_tensorrt

    fake_gpu.install(monkeypatch)
    trt = fake_gpu.fake_tensorrt_builder("10.8.0", True, cache_fits=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    graph = tmp_path / "m.onnx"
    shutil.copy(tiny_quantized[0] / "model.onnx", graph)
    (tmp_path / "m.timing_cache").write_bytes(b"foreign cache")
    build_tensorrt(graph, BuildOptions(target="tensorrt", output=tmp_path / "m.trt"), quiet=True)
    assert trt.seen["cache_set"] == [b"foreign cache", b""]  # refused, then a fresh one
    assert "does not fit this GPU" in capsys.readouterr().err
    assert (tmp_path / "m.timing_cache").read_bytes() == b"cache for this GPU"


def test_tensorrt_without_a_gpu_is_soft_for_callers(tiny_quantized, monkeypatch, tmp_path):
    import sys

    from elir_edge.engines.tensorrt import build_tensorrt

    fake_gpu.install(monkeypatch, gpu=None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_gpu.fake_tensorrt_builder("10.8.0", True))
    with pytest.raises(BuilderMissing, match="no NVIDIA GPU"):
        build_tensorrt(tiny_quantized[0] / "model.onnx", BuildOptions(target="tensorrt", output=tmp_path / "x"))


def test_an_int8_engine_for_turing_is_labelled_unverified(graphs, tmp_path, capsys):
    """`build` says, in its table and the manifest, that NVIDIA's TensorRT-RTX matrix lists no INT8 on Turing."""
    out = tmp_path / "int8.engine"
    assert main(["build", "-q", str(graphs["model_int8_fp16"]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: INT8 on Turing is not in TensorRT-RTX's support matrix: unverified" in printed
    manifest = json.loads((tmp_path / "int8.engine.json").read_text())
    assert manifest["support"] == ["INT8 on Turing is not in TensorRT-RTX's support matrix: unverified"]
