"""The TensorRT path on the CPU: build, manifest, runner buffers, CUDA-event timing, CUDA graphs and the
bench/restore wiring run against stand-ins (fake_tensorrt.py); error paths against the real absence."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import fake_tensorrt
import numpy as np
import pytest

from elir_edge.cli import main
from elir_edge.engines.tensorrt import build_engine
from elir_edge.errors import UserError
from elir_edge.runtime import tensorrt as te
from elir_edge.runtime.open import open_runner
from elir_edge.runtime.ort import OrtRunner


@pytest.fixture
def engine_folder(tiny_quantized, tmp_path, monkeypatch):
    """A copy of the tiny quantized export with an INT8 engine built by the stand-in TensorRT."""
    folder = tmp_path / "export"
    shutil.copytree(tiny_quantized[0], folder)
    rt = fake_tensorrt.install(monkeypatch)
    manifest = build_engine(folder / "model_int8.onnx", folder / "model_int8.trt")
    return folder, rt, manifest


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_build_writes_engine_manifest_and_cache(engine_folder):
    folder, _, manifest = engine_folder
    assert manifest["onnx"] == "model_int8.onnx" and manifest["strongly_typed"]
    assert manifest["tensorrt"] == fake_tensorrt.VERSION and manifest["gpu_name"] == "Fake GPU"
    assert json.loads((folder / "model_int8.trt.json").read_text()) == manifest
    assert (folder / "model_int8.timing_cache").read_bytes() == b"timing cache"
    with pytest.raises(te.EngineUnavailable, match="strongly typed"):
        build_engine(folder / "model.onnx", folder / "model_fp16.trt", fp16=True)
    assert not (folder / "model_fp16.trt").exists()


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_runner_reproduces_the_graph_and_times_with_events(engine_folder, cuda_graph):
    folder, rt, _ = engine_folder
    runner = open_runner(folder / "model_int8.trt", cuda_graph=cuda_graph)
    assert runner.batch == 1 and runner.needs_eps and runner.graph_path == folder / "model_int8.onnx"
    rng = np.random.default_rng(0)
    lq = rng.random((3, 3, 64, 64), dtype=np.float32)  # three images through a batch-1 engine
    eps = rng.standard_normal((3, 16, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(runner(lq, eps), OrtRunner(folder / "model_int8.onnx")(lq, eps))
    assert rt.launches == (3 if cuda_graph else 0)  # one replay per batch of the captured graph
    t = runner.device_timed(lq[:1], eps[:1])
    assert 0 < t["compute_ms"] <= t["end_to_end_ms"]
    runner.close()
    assert rt.blocks == {}  # every pinned and device buffer given back


def test_bench_and_restore_run_engines(engine_folder, tiny_quantized, tmp_path, capsys):
    folder, _, _ = engine_folder
    data = tiny_quantized[0].parent / "calib"
    report = tmp_path / "bench.json"
    assert main(["bench", "--engine", str(folder / "model_int8.onnx"), "--engine", str(folder / "model_int8.trt"),
                 "--cuda-graph", "--data", str(data), "--iterations", "3", "--duration", "0", "--warmup", "0",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "Fake GPU (TensorRT 10.99.0-fake" in out and "GPU time from CUDA events" in out
    r = json.loads(report.read_text())
    ort_row, trt_row = r["rows"]
    assert trt_row["runner"] == "TensorRT + CUDA graph" and "device" not in ort_row["speed"]
    assert trt_row["speed"]["device"]["compute"]["n"] >= 3
    assert trt_row["vs_float"]["psnr"]["mean"] == ort_row["vs_float"]["psnr"]["mean"]  # same outputs
    assert r["machine"]["gpu"]["gpu_compute_capability"] == "8.9"
    assert main(["restore", "-q", "--engine", str(folder / "model_int8.trt"), str(data), "-o",
                 str(tmp_path / "restored")]) == 0
    assert len(list((tmp_path / "restored").glob("*.png"))) == len(list(data.glob("*.png")))


def test_engine_errors_are_one_line(engine_folder, tmp_path, capsys):
    folder, _, manifest = engine_folder
    engine = folder / "model_int8.trt"
    truncated = folder / "truncated.trt"
    truncated.write_bytes(engine.read_bytes()[:2000])
    (folder / "truncated.trt.json").write_text(json.dumps(manifest))
    assert "damaged or truncated" in _one_line_error(capsys, ["bench", "--engine", str(truncated)])
    (folder / "model_int8.trt.json").write_text(json.dumps({**manifest, "gpu_compute_capability": "7.2"}))
    assert "rebuild it here" in _one_line_error(capsys, ["bench", "--engine", str(engine)])
    elsewhere = tmp_path / "alone"
    elsewhere.mkdir()
    shutil.copy(engine, elsewhere / "m.trt")
    (elsewhere / "m.trt.json").write_text(json.dumps(manifest))
    assert "not beside it" in _one_line_error(capsys, ["bench", "--engine", str(elsewhere / "m.trt")])


def test_engine_without_tensorrt_or_gpu_provider(tiny_quantized, tmp_path, capsys):
    folder = tiny_quantized[0]
    engine = tmp_path / "model.trt"
    engine.write_bytes(b"plan")
    (tmp_path / "model.trt.json").write_text("{}")
    msg = _one_line_error(capsys, ["bench", "--engine", str(engine)])
    assert "not installed" in msg and "NVIDIA GPU" in msg
    msg = _one_line_error(capsys, ["bench", "--engine", str(folder / "model.onnx"), "--provider", "cuda"])
    assert "no CUDAExecutionProvider" in msg and "--provider cpu" in msg
    with pytest.raises(UserError, match="unknown provider"):
        OrtRunner(folder / "model.onnx", provider="npu")


def test_stand_in_has_the_real_cuda_api():
    """Every CUDA runtime call the engine module makes exists in the stand-in, and (where cuda-bindings is
    installed) in the real bindings, so the tests above exercise real call names."""
    source = Path(te.__file__).read_text()
    used = set(re.findall(r"\brt\.(cuda\w+)", source))
    outside_probe = re.sub('_GPU_PROBE = """.*?"""', "", source, flags=re.S)  # the probe runs in a child
    in_process = set(re.findall(r"\brt\.(cuda\w+)", outside_probe))
    assert in_process and in_process <= set(dir(fake_tensorrt._Runtime))
    try:
        from cuda.bindings import runtime as real
    except ImportError:
        pytest.skip("cuda-bindings not installed: checked against the stand-in only")
    assert used <= set(dir(real))
    for enum, member in re.findall(r"\brt\.(cuda\w+)\.(cuda\w+)", source):
        assert hasattr(getattr(real, enum), member)
