"""Calibration loading, PTQ with MCT on a tiny model, the TensorRT-form rewrite and the engine module
without TensorRT or a GPU."""

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import SMALL
from onnx import numpy_helper
from PIL import Image

from elir_edge.cli import main
from elir_edge.errors import InternalError, UserError
from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.synthetic import random_model, save_checkpoint
from elir_edge.quantize.calibration import calibration_batches
from elir_edge.quantize.stage import QuantizeOptions, block_of, quantize_export


def _write_mixed_folder(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 77, 3), np.uint8)).save(folder / "odd.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8), "L").save(folder / "gray.jpg")
    Image.fromarray(rng.integers(0, 255, (70, 70, 4), np.uint8), "RGBA").save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 65535, (80, 96), np.uint16)).save(folder / "deep16.png")
    sub = folder / "nested"
    sub.mkdir()
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), np.uint8)).save(sub / "inner.bmp")
    (folder / "notes.csv").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")


def test_calibration_loads_every_kind_of_image(tmp_path):
    folder = tmp_path / "calib"
    _write_mixed_folder(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = calibration_batches(folder, 64, 96, 16, task="denoising", batch=2, seed=1)
    messages = " ".join(str(w.message) for w in caught)
    assert "non-image" in messages and "notes.csv" in messages
    assert "broken.png" in messages
    lq = np.concatenate([b[0].numpy() for b in batches])
    eps = np.concatenate([b[1].numpy() for b in batches])
    assert lq.shape == (5, 3, 64, 96) and eps.shape == (5, 16, 8, 12)
    assert lq.min() >= 0 and lq.max() <= 1
    again = calibration_batches(folder, 64, 96, 16, task="denoising", batch=2, seed=1)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(batches, again))
    clean = calibration_batches(folder, 64, 96, 16, task=None, num_images=2)
    assert sum(len(b[0]) for b in clean) == 2


def test_calibration_holds_the_tasks_inputs_and_the_same_eps_as_bench(tmp_path):
    """Exactly what MCT calibrates on, worked out here another way: image i fitted, degraded the task's way
    with seed + i, channels in RGB order; eps of image i = the field bench and restore draw for seed + i."""
    from elir_edge.common.degrade import degrade
    from elir_edge.model.eval_inputs import eval_inputs
    from elir_edge.model.noise import latent_noise

    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(3)
    photos = []
    for i in range(3):  # red, green and blue each their own level: a swapped channel order shows
        img = np.zeros((64, 64, 3), np.uint8)
        img[..., 0], img[..., 1], img[..., 2] = 200, 120, 40
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
        photos.append(img)
    batches = calibration_batches(folder, 64, 64, 16, task="denoising", batch=2, seed=7)
    lq = np.concatenate([b[0].numpy() for b in batches])
    eps = np.concatenate([b[1].numpy() for b in batches])
    for i, img in enumerate(photos):
        want = degrade("denoising", img, 7 + i).transpose(2, 0, 1).astype(np.float32) / 255
        assert np.array_equal(lq[i], want)
        assert np.array_equal(eps[i], latent_noise(16, 64, 64, 7 + i))
    assert lq[:, 0].mean() > lq[:, 1].mean() > lq[:, 2].mean()  # R, G, B
    bench = eval_inputs([(str(i), p) for i, p in enumerate(photos)], "denoising", 64, 64, 16, seed=7)
    assert np.array_equal(bench.lq, lq) and np.array_equal(bench.eps, eps)


def test_sixteen_bit_and_alpha_are_converted(tmp_path):
    from elir_edge.common.images import read_rgb

    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "w16.png")
    assert read_rgb(tmp_path / "w16.png").min() == 255
    Image.fromarray(np.zeros((8, 8, 4), np.uint8), "RGBA").save(tmp_path / "clear.png")
    assert read_rgb(tmp_path / "clear.png").min() == 255  # transparent composites on white


@pytest.mark.parametrize("make, match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "holds no images"),
    (lambda p: p.write_text("x"), "not a folder"),
])
def test_bad_calibration_folders(tmp_path, make, match):
    folder = tmp_path / "c"
    make(folder)
    with pytest.raises(UserError, match=match):
        calibration_batches(folder, 64, 64, 16, task=None)


def _psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def _held_out_inputs(n=2, seed=3):
    from elir_edge.model.synthetic import probe_inputs

    pairs = [probe_inputs(seed + i) for i in range(n)]
    return (np.concatenate([p[0].numpy() for p in pairs]), np.concatenate([p[1].numpy() for p in pairs]))


def test_ptq_writes_both_flavours(tiny_quantized):
    """What the TensorRT form must look like, read off the file here (not through the tool's own checker)."""
    folder, report = tiny_quantized
    trt = onnx.load(str(folder / "model_int8.onnx"))
    convs = [n for n in trt.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    float_convs = {n.name for n in convs if n.name.startswith("/enc_layers_0/")}
    assert len(float_convs) == 1 and report["layers"]["float"] == sorted(float_convs)
    inits = {i.name: i for i in trt.graph.initializer}
    producer = {o: n for n in trt.graph.node for o in n.output}
    for conv in convs:
        src, w = producer.get(conv.input[0]), producer.get(conv.input[1])
        if conv.name in float_convs:
            assert w is None or w.op_type != "DequantizeLinear"
            continue
        assert src.op_type == w.op_type == "DequantizeLinear", conv.name
        assert inits[w.input[0]].data_type == onnx.TensorProto.INT8
        assert inits[src.input[2]].data_type == onnx.TensorProto.INT8  # activations: int8, zero point 0
        assert not numpy_helper.to_array(inits[src.input[2]]).any()
    cpu = onnx.load(str(folder / "model_int8_cpu.onnx"))
    zp = {i.name: i for i in cpu.graph.initializer}
    acts = [n for n in cpu.graph.node if n.op_type == "QuantizeLinear"]
    assert acts and all(zp[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in acts)
    # MCT's int8 grid shifted by 128 (q_u8 = q_s8 + 128), or the part of it seen on calibration (its own zero
    # point: test_seen_grids_...), over 7-bit weights in [-64, 63]; a ReLU's output is on an unsigned grid: zero
    # point 0, half MCT's scale (its [0, t] range at twice the resolution)
    producer = {o: n for n in cpu.graph.node for o in n.output}
    seen = 0
    for q in acts:
        after_relu = q.input[0] in producer and producer[q.input[0]].op_type == "Relu"
        point = int(numpy_helper.to_array(zp[q.input[2]]))
        narrowed = q.input[1].endswith("_scale_seen") and q.input[2].endswith("_zero_point_seen")
        assert point == 0 if after_relu else (point == 128 or narrowed), q.name
        seen += narrowed
    assert any(producer[q.input[0]].op_type == "Relu" for q in acts if q.input[0] in producer)
    assert seen > len(acts) / 4  # most signed grids are wider than what their tensor spans
    wq = [numpy_helper.to_array(zp[n.input[0]]) for n in cpu.graph.node
          if n.op_type == "DequantizeLinear" and n.input[0] in zp and zp[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert wq and min(w.min() for w in wq) >= -64 and max(w.max() for w in wq) <= 63
    # the 8-bit-weight CPU file: the same graph and activation grid, each weight on a grid twice as fine
    w8 = onnx.load(str(folder / "model_int8_cpu_w8.onnx"))
    assert [n.op_type for n in w8.graph.node] == [n.op_type for n in cpu.graph.node]
    init8 = {i.name: numpy_helper.to_array(i) for i in w8.graph.initializer}
    pairs = [(a, b) for a, b in zip(cpu.graph.node, w8.graph.node)
             if a.op_type == "DequantizeLinear" and a.input[0] in zp and zp[a.input[0]].data_type == onnx.TensorProto.INT8]
    assert len(pairs) == len(wq)
    for a, b in pairs:
        q7, q8 = numpy_helper.to_array(zp[a.input[0]]).astype(int), init8[b.input[0]].astype(int)
        assert np.allclose(numpy_helper.to_array(zp[a.input[1]]), 2 * init8[b.input[1]], rtol=1e-6)
        assert np.abs(q8 - 2 * q7).max() <= 1  # round(w/s) against 2 round(w/2s)
    sizes = {n: (folder / n).stat().st_size for n in ("model.onnx", "model_int8.onnx", "model_int8_cpu.onnx")}
    assert report["size_ratio"] == pytest.approx(sizes["model_int8.onnx"] / sizes["model.onnx"])
    assert report["size_ratio"] < 0.5 and sizes["model_int8_cpu.onnx"] < 0.5 * sizes["model.onnx"]


def _quantization_floor_db(graph: onnx.ModelProto) -> float:
    """The PSNR (data range 1) an int8 graph can be expected to keep: one 8-bit rounding of a [0, 1] tensor
    costs 20 log10(255 sqrt(12)) = 58.9 dB; n activation quantizers in a row, each adding noise of that
    relative size, add their noise powers: -10 log10(n)."""
    n = sum(1 for x in graph.graph.node if x.op_type == "QuantizeLinear")
    return 20 * np.log10(255 * np.sqrt(12)) - 10 * np.log10(n)


SEVEN_BIT_DB = 20 * np.log10(2)  # the CPU form's 7-bit weights: twice the step, 4x the weight rounding noise


def test_int8_graphs_track_the_float_graph(tiny_quantized):
    """int8 vs float measured here, on inputs quantize never saw, against the noise floor of as many 8-bit
    roundings as the graph has quantizers (worked out from the graph, not from the output's own level); the
    CPU form (7-bit weights) may lose what 4x the weight noise costs at most. Caught: weight scales off by 2x."""
    from elir_edge.runtime.ort import OrtRunner

    folder, report = tiny_quantized
    lq, eps = _held_out_inputs()
    ref = OrtRunner(folder / "model.onnx")(lq, eps)
    assert ref.std() > 0.1
    for name, penalty in (("model_int8.onnx", 0.0), ("model_int8_cpu.onnx", SEVEN_BIT_DB)):
        got = _psnr(OrtRunner(folder / name)(lq, eps), ref)
        floor = _quantization_floor_db(onnx.load(str(folder / name)))
        assert got > floor - penalty, (name, got, floor - penalty)


def _report_inputs(folder, report):
    """The held-out calibration images the report's drift figures were measured on: the last ones of the
    calibration folder, degraded and seeded as the report says."""
    c = report["calibration"]
    batches = calibration_batches(folder.parent / "calib", 64, 64, 16, task="denoising" if c["degraded"] else None,
                                  batch=1, seed=c["seed"])
    return batches[len(batches) - c["held_out"]:]


def _snr_db(got, ref):
    """Mean power of the reference over the mean power of the error, over the images."""
    sig = np.mean([np.mean(r.astype(np.float64) ** 2) for r in ref])
    return float(10 * np.log10(sig / np.mean([np.mean((g - r.astype(np.float64)) ** 2) for g, r in zip(got, ref)])))


def test_the_int8_fp16_norms_are_judged_on_the_peaks_of_the_int8_graph_over_the_held_out_images(tiny_quantized):
    """Which GroupNorms of the int8+fp16 file stay fp32 is decided on the largest |x| at their input, taken in
    the drift's own runs of model_int8.onnx: the report's peak is that of the int8 file on the held-out images,
    measured here with the export's own measure."""
    from elir_edge.exporter.fp16 import norm_input_peaks

    folder, report = tiny_quantized
    feeds = [{"lq": lq.numpy(), "eps": eps.numpy()} for lq, eps in _report_inputs(folder, report)]
    peaks = norm_input_peaks(onnx.load(str(folder / "model_int8.onnx")), feeds)
    assert len(feeds) == report["calibration"]["held_out"] >= 1 and peaks
    assert report["int8_fp16_vs_float"]["norm_input_peak"] == pytest.approx(max(peaks.values()), rel=1e-6)
    # over several inputs, each norm's own largest, whichever input it comes from
    from elir_edge.quantize.stage import Evaluator

    lq, eps = _held_out_inputs(3)
    many = [{"lq": lq[i:i + 1] * (1 + i % 2), "eps": eps[i:i + 1]} for i in range(3)]
    int8, norms = onnx.load(str(folder / "model_int8.onnx")), {}
    for n in int8.graph.node:
        if n.op_type == "InstanceNormalization":
            norms[n.name] = n.input[0]
    got = Evaluator(onnx.load(str(folder / "model.onnx")), many).compare(int8, peaks_of=tuple(norms.values()))["peaks"]
    want = norm_input_peaks(int8, many)
    assert {node: got[t] for node, t in norms.items()} == pytest.approx(want, rel=1e-6)
    assert any(want[n] != norm_input_peaks(int8, many[:1])[n] for n in norms)  # the first input alone differs


def test_the_reports_drift_figures_are_those_of_its_files(tiny_quantized):
    """The report's PSNR of each int8 file vs float and its latent SNR per step, measured here on the same
    held-out images: the float and int8 graphs run on ONNX Runtime with the latents (each step's input and the
    decoder's) as extra outputs, PSNR and SNR computed here. Same graphs, same inputs, same machine: equal but
    for the float rounding of a mean. Guards: figures of another graph, or of other images, in the report."""
    from elir_edge.quantize.qdq_rewrite import latent_tensors
    from elir_edge.runtime.ort import session_with_outputs

    folder, report = tiny_quantized
    feeds = [{"lq": lq.numpy(), "eps": eps.numpy()} for lq, eps in _report_inputs(folder, report)]
    assert len(feeds) == report["int8_vs_float"]["images"] >= 1

    def run(name):
        graph = onnx.load(str(folder / name))
        names = latent_tensors(graph)
        sess = session_with_outputs(graph, names)
        outs = [sess.run([sess.get_outputs()[0].name, *names], f) for f in feeds]
        return [o[0] for o in outs], [o[1:] for o in outs]

    ref, ref_lat = run("model.onnx")
    for name, key in (("model_int8.onnx", "int8_vs_float"), ("model_int8_cpu.onnx", "int8_cpu_vs_float"),
                      ("model_int8_cpu_s8.onnx", "int8_cpu_s8_vs_float")):
        out, lat = run(name)
        assert report[key]["psnr_db"] == pytest.approx(np.mean([_psnr(o, r) for o, r in zip(out, ref)]), abs=1e-4)
        if key == "int8_vs_float":
            snr = [_snr_db([q[k] for q in lat], [r[k] for r in ref_lat]) for k in range(len(ref_lat[0]))]
            assert len(snr) == 3 and report["latent_snr_db_per_step"] == pytest.approx(snr, abs=1e-3)


def test_sensitivity_values(tiny_quantized):
    """A block quantized alone costs no more than all blocks together; every block and Euler step is reported."""
    _, report = tiny_quantized
    alone = report["sensitivity_psnr_db_block_alone_int8"]
    assert set(alone) == {"encoder", "coarse estimator", "step 0", "step 1", "decoder"}
    assert min(alone.values()) > report["int8_vs_float"]["psnr_db"] - 1.0
    assert all(np.isfinite(v) and v < 80 for v in alone.values())


def test_keep_float_edges_and_auto_precision(requantize):
    from elir_edge.quantize.options import EDGE_LAYERS

    folder, run = requantize
    edges = run(keep_float=EDGE_LAYERS)
    floats = edges["layers"]["float"]
    assert any("enc_layers_0" in n for n in floats) and any("dec_layers_18" in n for n in floats)
    assert sum("final_proj" in n for n in floats) == 2  # one per Euler step
    trt = onnx.load(str(folder / "model_int8.onnx"))
    producer = {o: n for n in trt.graph.node for o in n.output}
    for conv in (n for n in trt.graph.node if n.name in floats):
        assert producer.get(conv.input[1]) is None or producer[conv.input[1]].op_type != "DequantizeLinear"
    r = run(auto_precision=True, target_psnr=90)  # unreachable: every block ends in float
    trail = r["auto_precision"]
    assert trail[0]["float_blocks"] == [] and len(trail[-1]["float_blocks"]) == 5
    assert trail[-1]["psnr_db"] > trail[0]["psnr_db"] + 10  # all float is (nearly) the float model
    order = [next(b for b in t["float_blocks"] if b not in prev["float_blocks"]) for prev, t in zip(trail, trail[1:])]
    sens = r["sensitivity_psnr_db_block_alone_int8"]
    assert order == sorted(sens, key=sens.get)  # the most sensitive block goes float first
    r = run(auto_precision=True, target_psnr=r["int8_vs_float"]["psnr_db"] - 100)  # already met
    assert len(r["auto_precision"]) == 1 and r["layers"]["float"] == []


def test_the_int8_files_are_checked_on_every_installed_runtime_or_on_those_asked(tiny_quantized, requantize,
                                                                                 monkeypatch, capsys):
    """By default every installed CPU runtime's verdict is recorded; `--runtime ort` records ONNX Runtime's alone
    (no OpenVINO compile); a runtime asked for that is not installed is refused in one line before any work."""
    from conftest import snapshot

    import elir_edge.quantize.runtimes as runtimes
    from elir_edge.runtime.open import RunnerOptions, open_runner

    def kind(rt: str) -> str:
        with open_runner(tiny_quantized[0] / "model_int8_cpu.onnx", RunnerOptions(runtime=rt)) as runner:
            return runner.kind

    kinds = {kind(rt) for rt in runtimes.installed_cpu_runtimes()}
    assert set(tiny_quantized[1]["runtimes_here"]) == kinds and "ONNX Runtime CPU" in kinds
    folder, _ = requantize
    calib = str(tiny_quantized[0].parent / "calib")
    argv = ["quantize", "-q", "--model", str(folder), "--calib", calib, "--no-engine", "--runtime"]
    assert main([*argv, "ort"]) == 0
    assert set(json.loads((folder / "quant_report.json").read_text())["runtimes_here"]) == {"ONNX Runtime CPU"}
    monkeypatch.setattr(runtimes, "installed_cpu_runtimes", lambda: ["ort"])
    before, _ = snapshot(folder), capsys.readouterr()
    assert main([*argv, "openvino"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["elir-edge quantize: error: --runtime openvino: openvino is not installed here: pip install "
                   "'elir-edge[openvino]', or leave it out"] and snapshot(folder) == before
    with pytest.raises(UserError, match="--runtime trt: not a CPU runtime; give ort or openvino"):
        runtimes.runtimes_to_check(["trt"])  # through the Python API, where argparse's choices do not stand guard


def test_keep_float_pattern_that_matches_nothing_is_refused(requantize):
    folder, run = requantize
    with pytest.raises(UserError, match="matches no conv"):
        run(keep_float=["steps.*.no_such_conv"])


def test_a_graph_that_breaks_the_rules_is_not_written(tiny_quantized, requantize, monkeypatch, capsys):
    """A rewrite that leaves uint8 zero points in the TensorRT form (rule R1) makes quantize fail, and
    the artifacts from before stay as they were."""
    import elir_edge.quantize.stage as stage

    folder, run = requantize
    before = {n: (folder / n).read_bytes() for n in ("model_int8.onnx", "model_int8_cpu.onnx", "quant_report.json")}
    real = stage._variant
    monkeypatch.setattr(stage, "_variant", lambda g, f, target="tensorrt": real(g, f, "cpu"))
    with pytest.raises(InternalError, match="breaks TensorRT rule R1"):
        run()
    assert {n: (folder / n).read_bytes() for n in before} == before
    # through the CLI: our defect, said as such (exit 3), with a bug report file, never blamed on the input
    code = main(["quantize", "-q", "--model", str(folder), "--calib", str(tiny_quantized[0].parent / "calib"),
                 "--no-engine"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "this is a bug in elir-edge, not a problem with your input" in err[0], err
    report = Path(err[0].split("the details in ")[1])
    assert "breaks TensorRT rule R1" in report.read_text() and "command: elir-edge quantize" in report.read_text()
    report.unlink()
    assert {n: (folder / n).read_bytes() for n in before} == before


def test_cpu_form_weights_are_seven_bit(tiny_quantized):
    """U8S8 kernels on x86 without VNNI saturate 16-bit pair sums unless weights stay in [-64, 63]; the
    8-bit-weight CPU file (for VNNI) and the TensorRT form keep the full int8 range."""
    from onnx import numpy_helper

    folder, _ = tiny_quantized
    for name, lo, hi in (("model_int8_cpu.onnx", -64, 63), ("model_int8.onnx", -128, 127),
                         ("model_int8_cpu_w8.onnx", -128, 127), ("model_int8_cpu_s8.onnx", -128, 127)):
        weights = [numpy_helper.to_array(t) for t in onnx.load(str(folder / name)).graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
        assert weights and min(w.min() for w in weights) >= lo and max(w.max() for w in weights) <= hi
        if hi == 127:
            assert max(w.max() for w in weights) > 63, name  # the full int8 range is used


def test_the_openvino_form_is_the_cpu_form_with_every_zero_point_zero(tiny_quantized):
    """OpenVINO runs a convolution without zero points on its plain int8 kernels: the OpenVINO form has the 8-bit
    CPU form's nodes, op for op, with every activation zero point 0 (int8 on MCT's grids; uint8 after a ReLU),
    where the CPU form carries uint8 zero points (128, or where the seen ranges put them)."""
    from onnx import numpy_helper

    folder, report = tiny_quantized
    graphs = {n: onnx.load(str(folder / n)).graph for n in ("model_int8_cpu_w8.onnx", "model_int8_cpu_s8.onnx")}

    def zero_points(g):
        init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        return [init[n.input[2]] for n in g.node
                if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in init]

    w8, s8 = (zero_points(g) for g in graphs.values())
    assert [n.op_type for n in graphs["model_int8_cpu_w8.onnx"].node] == \
        [n.op_type for n in graphs["model_int8_cpu_s8.onnx"].node]
    assert len(s8) == len(w8) > 20 and all(int(z) == 0 for z in s8)
    assert {z.dtype for z in s8} == {np.dtype(np.int8), np.dtype(np.uint8)}
    assert sum(int(z) != 0 for z in w8) > len(w8) // 2  # the CPU form's grids are shifted: a different file
    assert report["int8_cpu_s8_vs_float"]["psnr_db"] > 25
    from elir_edge.runtime.interface import onnx_interface

    assert onnx_interface(folder / "model_int8_cpu_s8.onnx").int8_cpu_form  # bench's int8 roof, restore's warning


def test_block_names():
    assert block_of("/steps_2_final_conv_steps_2_final_proj_collapsed/layer/Conv") == "step 2"
    assert block_of("/enc_layers_0/layer/Conv") == "encoder"
    assert block_of("/mmse_lrm_0_RDB1_conv1_block_0/layer/Conv") == "coarse estimator"
    assert block_of("/dec_layers_18/layer/Conv") == "decoder"


def test_quantize_cli_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", "-q"]) == 2
    assert "no export under export/" in capsys.readouterr().err
    assert main(["quantize", "-q", "--model", str(tmp_path)]) == 2
    assert "not an export folder" in capsys.readouterr().err


def test_explicit_engine_without_tensorrt_rtx_fails_in_one_line(tiny_quantized, requantize, capsys, monkeypatch):
    """Without tensorrt-rtx the folder's Turing engine is skipped with a reason; an explicit --rtx-engine fails
    in one line before any work, and nothing is written."""
    from elir_edge.engines import turing_engine
    from elir_edge.model.export_folder import ExportFolder

    import builtins

    real_import = builtins.__import__

    def no_rtx(name, *a, **k):
        if name == "tensorrt_rtx":
            raise ImportError("no tensorrt_rtx")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_rtx)
    folder, run = requantize
    run()
    r = turing_engine(ExportFolder(folder), quiet=True)
    assert not r["built"] and "pip install 'elir-edge[rtx]'" in r["reason"]
    before = (folder / "quant_report.json").read_bytes()
    with pytest.raises(UserError, match="x.engine: TensorRT-RTX is not installed"):
        turing_engine(ExportFolder(folder), output=folder / "x.engine", required=True, quiet=True)
    code = main(["quantize", "-q", "--model", str(folder), "--calib", str(tiny_quantized[0].parent / "calib"),
                 "--rtx-engine", str(folder / "x.engine")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "TensorRT-RTX is not installed" in err[0], err
    assert not (folder / "x.engine").exists() and (folder / "quant_report.json").read_bytes() == before


def test_baked_noise_export_quantizes(tiny_quantized, tmp_path):
    """Single-input graphs (`--noise baked`) go through MCT too (no dangling eps input)."""
    from elir_edge.runtime.ort import OrtRunner

    folder, _ = tiny_quantized
    baked = tmp_path / "baked"
    model = random_model(SMALL, k=1, sigma=0.1)
    ckpt = save_checkpoint(model, tmp_path / "b.pth", "release")
    export_checkpoint(ckpt, ExportOptions(task="denoising", steps=1, image_size=(64, 64), baked_noise=True, seed=4,
                                          output=baked), quiet=True)
    quantize_export(QuantizeOptions(model=baked, calib=folder.parent / "calib"), quiet=True)
    lq, _ = _held_out_inputs()
    out = OrtRunner(baked / "model_int8.onnx")(lq, None)
    ref = OrtRunner(baked / "model.onnx")(lq, None)
    floor = _quantization_floor_db(onnx.load(str(baked / "model_int8.onnx")))
    assert out.shape == ref.shape and ref.std() > 0.1 and _psnr(out, ref) > floor, (_psnr(out, ref), floor)  # TRT form


def test_gptq_on_two_input_graph_is_refused_in_one_line(tiny_quantized):
    from elir_edge.quantize.mct import PTQOptions

    folder, _ = tiny_quantized
    with pytest.raises(UserError, match="--noise baked"):
        quantize_export(QuantizeOptions(model=folder, calib=folder.parent / "calib", ptq=PTQOptions(gptq_epochs=1)),
                        quiet=True)


def test_static_batch_export_is_refused_before_any_quantization(tiny_quantized, tmp_path):
    folder, _ = tiny_quantized
    ckpt = save_checkpoint(random_model(SMALL, k=1), tmp_path / "b2.pth", "release")
    export_checkpoint(ckpt, ExportOptions(task="denoising", steps=1, image_size=(64, 64), batch=2,
                                          output=tmp_path / "b2"), quiet=True)
    with pytest.raises(UserError, match="static batch 2"):
        quantize_export(QuantizeOptions(model=tmp_path / "b2", calib=folder.parent / "calib"), quiet=True)
    assert not (tmp_path / "b2" / "model_int8.onnx").exists()


def test_memory_estimate_refuses_before_mct(requantize, monkeypatch):
    import elir_edge.quantize.stage as stage

    folder, run = requantize
    before = (folder / "quant_report.json").read_bytes()
    monkeypatch.setattr(stage, "quantize_module", lambda *a: pytest.fail("MCT ran"))
    with pytest.raises(UserError, match=r"would need about [\d.]+ GB \(peak while .*\), 0.0 GB are available: "):
        run(memory_limit_gb=0.01)
    assert (folder / "quant_report.json").read_bytes() == before


def test_memory_estimate_grows_with_the_calibration_crop(requantize):
    import elir_edge.quantize.stage as stage
    from elir_edge.model.export_folder import ExportFolder
    from elir_edge.model.folded import load_folded

    folder, _ = requantize
    export = ExportFolder(folder)
    folded, s = load_folded(export), export.settings
    small, large = (stage.estimate_memory(folded, size, 1, 4, s) for size in (32, 64))
    assert small["activations"] > 0
    assert large["activations"] == pytest.approx(4 * small["activations"], rel=0.05)  # pixels, not images
    assert small["histograms"] == large["histograms"] and small["during_mct_gb"] <= large["during_mct_gb"]
    assert large["full_size_activations"] == pytest.approx(small["full_size_activations"])  # the graph's own size
    more = stage.estimate_memory(folded, 64, 1, 4004, s)  # images (input and target, fp32) held through both moments
    for moment in ("during_mct_gb", "export_gb"):
        assert more[moment] - large[moment] == pytest.approx(4000 * 2 * 3 * s.height * s.width * 4 / 1e9, abs=0.011)


def test_calibration_on_smaller_crops_exports_the_full_graph(requantize):
    folder, run = requantize
    r = run(calib_size=32)
    assert r["calibration_size"] == 32 and "32x32" in next(k for k in r["profile"]["stages_s"] if "MCT" in k)
    dims = [d.dim_value for d in onnx.load(str(folder / "model_int8.onnx")).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    for bad in (48, 128):
        with pytest.raises(UserError, match="--calib-size"):
            run(calib_size=bad)


def test_merged_histograms_match_mcts_own_merge():
    """Merging every MERGE_EVERY batches (bounded memory) gives MCT's end-of-run merge back, within the
    interpolation both use."""
    from model_compression_toolkit.core.common.collectors.histogram_collector import (
        HistogramCollector,
    )

    from elir_edge.quantize.mct_lean import MERGE_EVERY, lean_statistics

    rng = np.random.default_rng(0)
    batches = [rng.normal(i * 0.05, 1 + i * 0.02, 20000) for i in range(3 * MERGE_EVERY + 1)]
    lazy = HistogramCollector()
    for b in batches:
        lazy.update(b)
    with lean_statistics(weighted_histograms=False):
        lean = HistogramCollector()
        for b in batches:
            lean.update(b)
        assert len(lean._histogram_per_iteration) <= MERGE_EVERY
    (bl, cl), (bm, cm) = lazy.get_histogram(), lean.get_histogram()
    assert bl[0] == pytest.approx(bm[0]) and bl[-1] == pytest.approx(bm[-1])
    assert cm.sum() == pytest.approx(cl.sum())
    assert np.abs(np.cumsum(cm) - np.cumsum(cl)).max() < 0.01 * cl.sum()  # the distributions agree


def test_ptq_options_reach_mct(monkeypatch):
    """--weights-error-method and --error-method arrive in MCT's QuantizationConfig."""
    import model_compression_toolkit as mct

    from elir_edge.quantize.mct import PTQOptions, quantize_module

    seen = {}

    def fake_ptq(module, gen, core_config, target_platform_capabilities):
        seen["qc"] = core_config.quantization_config
        return module, None

    monkeypatch.setattr(mct.ptq, "pytorch_post_training_quantization", fake_ptq)
    quantize_module(torch.nn.Identity(), [(torch.zeros(1),)], PTQOptions(error_method="mae",
                                                                         weights_error_method="mse"))
    assert seen["qc"].activation_error_method.name == "MAE" and seen["qc"].weights_error_method.name == "MSE"
    quantize_module(torch.nn.Identity(), [(torch.zeros(1),)], PTQOptions())
    assert seen["qc"].weights_error_method.name == "NOCLIPPING"  # the default: per-channel maximum


def test_sensitivity_images_option(requantize, monkeypatch):
    """--sensitivity-images N measures each block on N held-out images, while drift keeps all of them."""
    import elir_edge.quantize.stage as stage

    sizes, real = [], stage.Evaluator.compare
    monkeypatch.setattr(stage.Evaluator, "compare",
                        lambda self, model, latents=True, **kw: sizes.append(len(self.feeds)) or real(self, model, latents, **kw))
    _, run = requantize
    report = run(holdout=2, sensitivity_images=1)
    blocks = len(report["sensitivity_psnr_db_block_alone_int8"])
    assert report["sensitivity_images"] == 1 and blocks >= 2
    # each block alone on one image, then every file's drift on both held-out images
    assert sizes[:blocks] == [1] * blocks and sizes[blocks:] == [2] * (len(sizes) - blocks) and len(sizes) > blocks


@pytest.mark.parametrize("side,images", [(256, 2), (512, 1), (1024, 1), (128, 8), (181, 4)])
def test_the_default_sensitivity_holds_two_256_px_images_of_pixels(side, images):
    """Each block's sensitivity is a run of the whole graph per image: by default as many held-out images as
    hold 2 x 256 x 256 pixels (never none), so bfr at 512 px runs each block once, the demo twice."""
    from elir_edge.model.settings import RunSettings
    from elir_edge.quantize.stage import sensitivity_images

    assert sensitivity_images(RunSettings("bfr", 5, 0.1, side, side)) == images
    assert sensitivity_images(RunSettings("bfr", 5, 0.1, side, 2 * side)) == max(1, images // 2)


@pytest.mark.parametrize("method", ["mse", "mae", "lp"])
def test_skipping_the_unread_histogram_keeps_mcts_thresholds(method):
    """The activation threshold search gives the very threshold MCT's own gives, per error method, on skewed
    and symmetric histograms; KL, which reads the re-binned histogram, keeps MCT's own function."""
    import model_compression_toolkit.core.common.quantization.quantization_config as qc
    from mct_quantizers import QuantizationMethod
    from model_compression_toolkit.core.common.quantization.quantization_params_generation import (
        error_functions,
        qparams_search,
        symmetric_selection,
    )

    from elir_edge.quantize.mct_lean import skip_unread_histograms

    real = qparams_search.qparams_selection_histogram_search_error_function
    error = error_functions.get_threshold_selection_histogram_error_function(
        QuantizationMethod.SYMMETRIC, qc.QuantizationErrorMethod[method.upper()], p=2)
    rng = np.random.default_rng(1)
    tensors = [rng.normal(0.3, 1.0, 50000), np.abs(rng.standard_t(3, 50000)), rng.laplace(0, 0.2, 50000),
               np.maximum(rng.normal(0, 1, 50000), 0), rng.normal(0, 1e-6, 5000), rng.exponential(1, 500) - 0.1]
    for x in tensors:
        counts, bins = np.histogram(x, bins=2048)
        for signed in (None, True):
            args = (error, np.abs(x).max(), bins, counts.astype(float), 8)
            mcts = qparams_search.qparams_symmetric_selection_histogram_search(*args, is_signed=signed)
            with skip_unread_histograms(method):
                assert qparams_search.qparams_selection_histogram_search_error_function is not real
                ours = symmetric_selection.qparams_symmetric_selection_histogram_search(*args, is_signed=signed)
            assert ours[1] == mcts[1] and float(ours[0]) == float(mcts[0])
    search = symmetric_selection.qparams_symmetric_selection_histogram_search
    with skip_unread_histograms("kl"):
        assert qparams_search.qparams_selection_histogram_search_error_function is real
        assert symmetric_selection.qparams_symmetric_selection_histogram_search is search
    assert qparams_search.qparams_selection_histogram_search_error_function is real


def test_the_cpu_file_to_ship_follows_the_target_and_this_machines_verdicts():
    from elir_edge.quantize.runtimes import cpu_file_to_ship

    right = {"ONNX Runtime CPU": {"model_int8_cpu_w8.onnx": {"computes_right": True}}}
    wrong = {"ONNX Runtime CPU": {"model_int8_cpu_w8.onnx": {"computes_right": True}},
             "OpenVINO CPU": {"model_int8_cpu_w8.onnx": {"computes_right": False}}}
    vnni, avx2 = {"int8_dot_product": "AVX-512 VNNI"}, {"int8_dot_product": None}
    assert cpu_file_to_ship("auto", vnni, right)["file"] == "model_int8_cpu_w8.onnx"
    ship = cpu_file_to_ship("auto", vnni, wrong)
    assert ship["file"] == "model_int8_cpu.onnx" and "OpenVINO CPU" in ship["why"]
    assert cpu_file_to_ship("auto", avx2, right)["file"] == "model_int8_cpu.onnx"
    for features in (vnni, avx2):  # a named target does not depend on this machine
        assert cpu_file_to_ship("vnni", features, wrong)["file"] == "model_int8_cpu_w8.onnx"
        assert cpu_file_to_ship("avx2", features, right)["file"] == "model_int8_cpu.onnx"


def test_onnx_runtime_runs_the_cpu_forms_blocks_in_uint8(tiny_quantized, tmp_path):
    """In the graph ONNX Runtime actually runs (its optimized model), every conv of the CPU forms is a
    QLinearConv, no ReLU sits in float between a DequantizeLinear and a QuantizeLinear, the residual adds
    (Add -> ReLU) run as QLinearAdd and every concat as QLinearConcat: the blocks stay uint8 between
    convolutions."""
    import onnxruntime as ort

    folder, _ = tiny_quantized
    for name in ("model_int8_cpu.onnx", "model_int8_cpu_w8.onnx"):
        graph = onnx.load(str(folder / name))
        convs = sum(n.op_type == "Conv" for n in graph.graph.node)  # ConvTranspose has no CPU QLinear kernel
        made = {o: n for n in graph.graph.node for o in n.output}
        residual = sum(1 for n in graph.graph.node if n.op_type == "Relu" and n.input[0] in made
                       and made[n.input[0]].op_type == "Add")
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(tmp_path / f"opt_{name}")
        ort.InferenceSession(str(folder / name), opts, providers=["CPUExecutionProvider"])
        ran = onnx.load(opts.optimized_model_filepath).graph.node
        ops = [n.op_type for n in ran]
        made = {o: n for n in ran for o in n.output}
        users = {i: n for n in ran for i in n.input}
        sandwiched = [n.name for n in ran if n.op_type == "Relu" and n.input[0] in made
                      and made[n.input[0]].op_type == "DequantizeLinear" and n.output[0] in users
                      and users[n.output[0]].op_type == "QuantizeLinear"]
        assert not sandwiched, (name, sandwiched)
        assert ops.count("QLinearConv") == convs - 1 and residual > 0  # all but enc.layers.0, kept float
        assert ops.count("QLinearAdd") >= residual, (name, ops.count("QLinearAdd"), residual)
        concats = sum(n.op_type == "Concat" for n in graph.graph.node)
        assert concats > 0 and ops.count("QLinearConcat") == concats and "Concat" not in ops, (name, concats)


def test_the_cpu_forms_carry_the_euler_state_in_float(tiny_quantized):
    """Each step adds its update to the float state, as the TensorRT form does (quantizing the state at every
    step cost 0.7 dB on the bundled model); only the convolutions that read the state read it quantized."""
    from elir_edge.quantize.qdq_rewrite import latent_tensors

    folder, _ = tiny_quantized
    for name in ("model_int8.onnx", "model_int8_cpu.onnx", "model_int8_cpu_w8.onnx", "model_int8_cpu_s8.onnx"):
        graph = onnx.load(str(folder / name)).graph
        states = latent_tensors(onnx.load(str(folder / name)))[:-1]  # the state entering each step
        assert len(states) == 2
        for state in states:
            readers = [n for n in graph.node if state in n.input]
            grids = {q.output[0] for q in readers if q.op_type == "QuantizeLinear"}
            dequantized = {d.output[0] for d in graph.node if d.op_type == "DequantizeLinear" and d.input[0] in grids}
            steps = [n for n in graph.node if n.op_type == "Conv" and dequantized & set(n.input)]
            assert any(n.op_type == "Add" for n in readers), (name, state, [n.op_type for n in readers])
            assert steps and all("first_proj" in n.name for n in steps), (name, state)


@pytest.fixture(scope="module")
def small_mct():
    """MCT as quantize runs it (every part of quantize/mct_lean.py on) on a small unrolled model, watched: a weak
    reference to each node output its statistics took, and how many of those seen were alive at each update; MCT's
    quantized model and its Q/DQ graph."""
    import types
    import weakref

    import elir_edge.quantize.mct as mct
    import elir_edge.quantize.mct_lean as lean
    from elir_edge.model.unroll import UnrolledElir
    from elir_edge.quantize.options import PTQOptions

    unrolled = UnrolledElir(random_model(SMALL, k=2, sigma=0.1)).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.rand(1, 3, 32, 32, generator=gen), torch.randn(1, 16, 4, 4, generator=gen)) for _ in range(2)]
    seen, alive, real_update = [], [], lean.update

    def watched(fw_impl, container, tensors):
        seen.append(weakref.ref(tensors[0]))
        alive.append(sum(r() is not None for r in seen))
        real_update(fw_impl, container, tensors)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lean, "update", watched)
        qmodel = mct.quantize_module(unrolled, batches, PTQOptions())
        graph = mct.export_quantized(qmodel, batches[0], ["lq", "eps"])
    return types.SimpleNamespace(unrolled=unrolled, batches=batches, qmodel=qmodel, graph=graph, updates=len(seen),
                                 alive=alive)


def _initializers_apart(a: onnx.ModelProto, b: onnx.ModelProto) -> list[str]:
    """Initializers of two graphs that differ: scales, zero points and weights at all, convolution biases by more
    than a few float32 ulps of the bias's own scale. The lean statistics pass runs its forward on fewer torch threads
    (quantize/mct_lean.py), whose convolutions round differently in the last bits on some CPUs (an AMX Xeon): the
    per-channel means that bias correction reads move by ~1e-7, and a float32 bias 1 ulp."""
    biases = {n.input[2] for n in a.graph.node if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 2}
    apart = []
    for x, y in zip(a.graph.initializer, b.graph.initializer):
        u, v = numpy_helper.to_array(x), numpy_helper.to_array(y)
        if x.name in biases and u.shape == v.shape and u.size:
            ulps = 4 * np.finfo(np.float32).eps * float(np.abs(u).max())
            same = np.abs(u.astype(np.float64) - v).max() <= ulps
        else:
            same = np.array_equal(u, v)
        if not same:
            apart.append(x.name)
    return apart


def test_streamed_statistics_give_mcts_own_graph_and_drop_outputs_as_they_go(small_mct, monkeypatch):
    """Statistics taken from each node's output as the node runs (MCT itself keeps every output of a forward
    to the end) give the Q/DQ graph MCT's own pass gives, scale for scale; the lean forward computes what
    MCT's forward computes; and outputs are dropped after their last reader: while the statistics pass runs,
    few of the outputs it has seen are still alive (every one of them, when nothing is dropped)."""
    import contextlib

    import elir_edge.quantize.mct as mct
    import elir_edge.quantize.mct_lean as lean
    from elir_edge.quantize.options import PTQOptions

    batches = small_mct.batches
    assert small_mct.updates > 100 and max(small_mct.alive) < 0.25 * small_mct.updates / len(batches)
    monkeypatch.setattr(mct, "streamed_statistics", contextlib.nullcontext)
    kept = mct.quantize_module(small_mct.unrolled, batches, PTQOptions())
    graphs = [small_mct.graph, mct.export_quantized(kept, batches[0], ["lq", "eps"])]
    assert [i.name for i in graphs[0].graph.initializer] == [i.name for i in graphs[1].graph.initializer]
    assert len(graphs[0].graph.initializer) > 50
    assert not _initializers_apart(*graphs)
    with torch.no_grad():
        plain = kept(*batches[1])
        with lean.streamed_statistics():
            assert torch.equal(kept(*batches[1]), plain)


def test_statistics_taken_beside_the_forward_all_end_with_its_batch(monkeypatch):
    """The node statistics of a batch, taken on threads: every update has run when the batch ends (the next batch's
    updates of a node come after), few outputs wait at once, and an update's error is the batch's error, after
    the others."""
    import threading
    import time

    import elir_edge.quantize.mct_lean as lean

    done, waiting, lock = [], [], threading.Lock()

    def slow(fw_impl, container, tensors):
        time.sleep(0.01)
        if container == "bad":
            raise ValueError("statistics of a bad node")
        with lock:
            done.append(container)

    monkeypatch.setattr(lean, "update", slow)
    with lean._Updates(None) as updates:
        for i in range(20):
            updates.add(i, [None])
            waiting.append(len([f for f in updates.pending if not f.done()]))
    assert sorted(done) == list(range(20)) and max(waiting) <= lean.PENDING + 1
    with pytest.raises(ValueError, match="bad node"):
        with lean._Updates(None) as updates:
            updates.add("bad", [None])
            updates.add(20, [None])
    assert done[-1] == 20
    with pytest.raises(KeyboardInterrupt):  # the forward's own interruption is not replaced by an update's error
        with lean._Updates(None) as updates:
            updates.add("bad", [None])
            raise KeyboardInterrupt


def test_seen_grids_narrow_the_signed_grid_to_the_seen_range_with_zero_exact():
    """A uint8 Q/DQ on MCT's signed grid takes the seen range inside MCT's (worked out by hand): a SiLU-like
    tensor in [-0.3, 1.0] under MCT's threshold 2.0 gets scale 1.3/255 and zero point round(0.3 / scale) = 59
    (0 dequantizes to 0 exactly); a range past MCT's is clipped at MCT's; zero point 0 (after a ReLU) and a
    range wider than the grid leave the Q/DQ as they were. ONNX Runtime computes the narrowed graph as the
    grid says."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from elir_edge.quantize.qdq_rewrite import seen_grids, signed_grid_tensors

    s = np.float32(2.0 / 127)
    nodes, inits = [], [numpy_helper.from_array(s, "s"), numpy_helper.from_array(np.uint8(128), "z128"),
                        numpy_helper.from_array(np.uint8(0), "z0")]
    for name, zp in (("a", "z128"), ("b", "z128"), ("c", "z0")):
        nodes += [helper.make_node("QuantizeLinear", [name, "s", zp], [f"{name}_q"]),
                  helper.make_node("DequantizeLinear", [f"{name}_q", "s", zp], [f"{name}_dq"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [5]) for n in "abc"],
                          [helper.make_tensor_value_info(f"{n}_dq", TensorProto.FLOAT, [5]) for n in "abc"], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert signed_grid_tensors(model) == ["a", "b"]
    seen_grids(model, {"a": (-0.3, 1.0), "b": (-5.0, 0.5), "c": (0.0, 0.1)})
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert init[q["a"].input[1]] == pytest.approx(1.3 / 255, rel=1e-6) and int(init[q["a"].input[2]]) == 59
    assert init[q["b"].input[1]] == pytest.approx((0.5 + 128 * float(s)) / 255, rel=1e-6)  # clipped at MCT's -128 s
    assert q["c"].input[1:] == ["s", "z0"]
    x = np.array([-0.3, 0.0, 0.3, 1.0, 3.0], np.float32)
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"a": x, "b": x, "c": x})[0]
    step = 1.3 / 255
    assert out[1] == 0.0 and np.abs(out[:4] - x[:4]).max() <= step / 2 + 1e-6 and out[4] == pytest.approx(1.0, abs=step)


def test_activation_ranges_are_read_off_the_file_every_x86_cpu_computes_right(requantize, monkeypatch):
    """The ranges the two seen-grid CPU forms' grids come from are measured on the 7-bit-weight form: ONNX Runtime computes the
    8-bit one wrongly on CPUs without VNNI (16-bit saturation), and ranges read off a wrong run would be wrong."""
    import elir_edge.quantize.stage as stage

    measured, real = [], stage.seen_ranges
    monkeypatch.setattr(stage, "seen_ranges", lambda model, *a: measured.append(model) or real(model, *a))
    _, run = requantize
    run()
    assert len(measured) == 1
    weights = [numpy_helper.to_array(i) for i in measured[0].graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert weights and min(w.min() for w in weights) >= -64 and max(w.max() for w in weights) <= 63


def test_mct_checks_each_graph_it_changed_once_when_the_run_ends(monkeypatch):
    """MCT's graph check runs once per changed graph, after the run (MCT runs it after each of hundreds of
    changes), with MCT's own code: a graph left inconsistent still fails, and a run that fails is not checked."""
    from model_compression_toolkit.core.common.fusion.fusing_info import FusingInfo
    from model_compression_toolkit.core.common.graph.base_graph import Graph

    import elir_edge.quantize.mct as mct
    from elir_edge.model.unroll import UnrolledElir
    from elir_edge.quantize.mct_lean import validate_once
    from elir_edge.quantize.options import PTQOptions

    checked, real = [], FusingInfo.validate
    monkeypatch.setattr(FusingInfo, "validate", lambda self, graph: checked.append(id(graph)) or real(self, graph))
    unrolled = UnrolledElir(random_model(SMALL, k=2, sigma=0.1)).eval()
    gen = torch.Generator().manual_seed(0)
    mct.quantize_module(unrolled, [(torch.rand(1, 3, 32, 32, generator=gen), torch.randn(1, 16, 4, 4, generator=gen))],
                        PTQOptions())
    assert len(checked) == len(set(checked)) == 1

    class Broken:  # a graph whose fusing information no longer matches it: MCT's check raises
        class fusing_info:
            @staticmethod
            def validate(graph):
                raise ValueError("fused operation holds a node not in the graph")

    with pytest.raises(ValueError, match="not in the graph"):
        with validate_once():
            Graph.validate(Broken())
            Graph.validate(Broken())
    with pytest.raises(KeyError):  # the run's own error, not the check's
        with validate_once():
            Graph.validate(Broken())
            raise KeyError("the run failed")


_FIRST_IMPORT = """
import gc, sys, weakref
from elir_edge.quantize.mct import import_mct
class Held:
    pass
def first_import():
    held = Held()  # stands for quantize_module's locals: the model, its quantized copy, the batches
    import_mct()
    return weakref.ref(held)
ref = first_import()
gc.collect()
print("pulp" in sys.modules, "alive" if ref() is not None else "freed")
"""


def test_the_frame_that_first_imports_mct_does_not_outlive_its_call():
    """pulp (MCT imports it) keeps each missing solver's ImportError with its traceback, and a traceback keeps
    the importing frames alive with their locals: MCT's quantized model (1.35 GB at bfr 512 px) outlived
    quantize. In a fresh interpreter (only a first import shows it) a frame that imports MCT through
    import_mct lets its locals go when it returns."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FIRST_IMPORT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["True", "freed"], out.stdout


def test_the_qdq_export_lets_the_model_it_was_handed_go_before_it_reads_the_graph(monkeypatch):
    """MCT's quantized model holds each shared weight once per unrolled step (1.35 GB at bfr 512 px): handed its
    only reference, the export drops it once traced, before the graph's bytes are parsed and deduplicated."""
    import weakref

    import elir_edge.quantize.qdq_rewrite as rewrite
    from elir_edge.quantize.mct import export_quantized

    refs, gone_before_read = [], []

    def made():
        module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
        refs.append(weakref.ref(module))
        return module

    real = rewrite.dedupe_initializers
    monkeypatch.setattr(rewrite, "dedupe_initializers", lambda m: gone_before_read.append(refs[0]() is None) or real(m))
    graph = export_quantized(made(), (torch.zeros(1, 3, 8, 8),), ["lq"])
    assert gone_before_read == [True] and [n.op_type for n in graph.graph.node] == ["Conv"]


def test_a_graph_traced_small_with_its_size_free_is_the_graph_traced_at_full_size(small_mct):
    """quantize traces MCT's model on the smallest input the graph takes with height and width free, then fixes
    them at the graph's own size (1/256 of the activations at bfr's 512 px). On MCT's quantized model of the ELIR
    ops that read a shape (GroupNorm's reshapes, upsampling, concats), at a size that is not square: the same nodes
    in the same order, the same weights and grids, the same output as the graph traced at full size."""
    import hashlib

    from elir_edge.exporter.onnx_graph import simplify
    from elir_edge.model.synthetic import probe_inputs
    from elir_edge.quantize.mct import export_quantized
    from elir_edge.quantize.stage import TRACE_SIZE
    from elir_edge.runtime.ort import ort_session_from_bytes

    qmodel = small_mct.qmodel
    gen = torch.Generator().manual_seed(1)
    full, small = (torch.rand(1, 3, 128, 64, generator=gen), torch.randn(1, 16, 16, 8, generator=gen)), \
        probe_inputs(2, size=TRACE_SIZE)
    names = ["lq", "eps"]
    at_full = simplify(export_quantized(qmodel, full, names))
    freed = simplify(export_quantized(qmodel, small, names, free_size=True),
                     {n: list(t.shape) for n, t in zip(names, full)})

    def weights(g):
        return sorted(hashlib.sha1(numpy_helper.to_array(t).tobytes()).hexdigest() for t in g.graph.initializer)

    assert [n.op_type for n in freed.graph.node] == [n.op_type for n in at_full.graph.node]
    assert weights(freed) == weights(at_full) and len(weights(freed)) > 10
    assert {"Reshape", "QuantizeLinear"} <= {n.op_type for n in freed.graph.node}
    feed = {n: t.numpy() for n, t in zip(names, full)}
    got, want = (ort_session_from_bytes(g.SerializeToString()).run(None, feed)[0] for g in (freed, at_full))
    assert got.shape == (1, 3, 128, 64)
    np.testing.assert_array_equal(got, want)


def test_mct_quantizes_only_the_outputs_whose_grids_our_files_keep(small_mct, monkeypatch):
    """MCT told to quantize only the outputs whose grids our files keep (convolution inputs, convolution outputs
    not read by a ReLU alone) gives, for every target and with a conv kept float, files that compute what the
    files of MCT quantizing every output compute, on the same grids, from far fewer outputs' statistics."""
    import contextlib

    import elir_edge.quantize.mct as mct
    import elir_edge.quantize.mct_lean as lean
    from elir_edge.quantize.options import PTQOptions
    from elir_edge.quantize.qdq_rewrite import TARGETS, rewrite
    from elir_edge.runtime.ort import ort_session_from_bytes

    batches = small_mct.batches
    feed = {"lq": batches[1][0].numpy(), "eps": batches[1][1].numpy()}
    updated, real_update = [], lean.update
    monkeypatch.setattr(lean, "update", lambda *a: (updated.append(a[1]), real_update(*a)))
    monkeypatch.setattr(mct, "grids_where_kept", contextlib.nullcontext)
    every = mct.quantize_module(small_mct.unrolled, batches, PTQOptions())
    graphs = [small_mct.graph, mct.export_quantized(every, batches[0], ["lq", "eps"])]
    assert small_mct.updates < 0.8 * len(updated), (small_mct.updates, len(updated))

    def scales(g: onnx.ModelProto) -> list[float]:
        init = {i.name: i for i in g.graph.initializer}
        return sorted(float(numpy_helper.to_array(init[q.input[1]])) for q in g.graph.node
                      if q.op_type == "QuantizeLinear" and q.input[0] not in init)

    first_conv = next(n.name for n in graphs[0].graph.node if n.op_type == "Conv")
    for target in TARGETS:
        for float_convs in (set(), {first_conv}):
            files = []
            for g in graphs:
                m = onnx.ModelProto()
                m.CopyFrom(g)
                rewrite(m, float_convs, target)
                files.append(m)
            assert scales(files[0]) == scales(files[1]) and len(scales(files[0])) > 20, (target, float_convs)
            outs = [ort_session_from_bytes(f.SerializeToString()).run(None, feed)[0] for f in files]
            np.testing.assert_array_equal(outs[0], outs[1], err_msg=f"{target}, float {float_convs}")


@pytest.mark.parametrize("shape", [(2, 8, 16, 16), (2, 3, 24, 40), (1, 4, 5, 7), (3, 2, 16, 16), (2, 4, 3), (2, 5)])
def test_per_channel_statistics_leave_mcts_collectors_as_their_own_update_would(shape):
    """The per-channel means and extremes handed to MCT's collectors leave them where MCT's own update on the
    whole batch leaves them (the extremes bit for bit, the means to the rounding of a sum's order), over several
    batches of values of different scales."""
    from model_compression_toolkit.core.common.collectors.mean_collector import MeanCollector
    from model_compression_toolkit.core.common.collectors.min_max_per_channel_collector import (
        MinMaxPerChannelCollector,
    )

    from elir_edge.quantize.mct_lean import per_channel

    rng = np.random.default_rng(sum(shape))
    pairs = [(MeanCollector(axis=1), MinMaxPerChannelCollector(axis=1, init_min_value=None, init_max_value=None))
             for _ in range(2)]
    for scale in (0.01, 3.0, 250.0):
        x = (rng.standard_normal(shape) * scale + scale / 3).astype(np.float32).astype(np.float64)
        pairs[0][0].update(x)
        pairs[0][1].update(x)
        means, extremes = per_channel(x, 1)
        pairs[1][0].update(means)
        pairs[1][1].update(extremes)
    np.testing.assert_allclose(pairs[1][0].state, pairs[0][0].state, rtol=1e-13, atol=0)
    assert np.array_equal(pairs[0][1].state, pairs[1][1].state)


def test_a_conv_kept_float_reads_the_float_tensor_through_a_chain_of_qdq_pairs():
    """MCT's export puts two Q/DQ pairs in a row where onnxsim removed a one-input Concat: a conv kept float
    reads the tensor before both, not the int8 values of the first."""
    from onnx import TensorProto as T
    from onnx import helper as h

    from elir_edge.quantize.qdq_rewrite import keep_float

    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")]
    pairs = [(h.make_node("QuantizeLinear", [x, "s", "z"], [f"q{i}"]),
              h.make_node("DequantizeLinear", [f"q{i}", "s", "z"], [f"d{i}"])) for i, x in ((1, "x"), (2, "d1"))]
    nodes = [*pairs[0], *pairs[1], h.make_node("Conv", ["d2", "w"], ["y"], name="conv")]
    model = h.make_model(h.make_graph(nodes, "chain", [h.make_tensor_value_info("x", T.FLOAT, [1, 1, 2, 2])],
                                      [h.make_tensor_value_info("y", T.FLOAT, [1, 1, 2, 2])], inits))
    keep_float(model, {"conv"})
    assert list(model.graph.node[-1].input) == ["x", "w"]


def test_the_runtime_check_runs_side_by_side_on_the_cores_this_process_may_use(tiny_quantized, monkeypatch):
    """In a cpuset of 3 of a machine's 16 cores, the runtime check runs 3 files at once, not 16."""
    import os

    import elir_edge.quantize.runtimes as runtimes
    from elir_edge.model.export_folder import CPU_FILES, PROBE
    from elir_edge.runtime.probe import load_probe

    class Sized(Exception):
        pass

    sizes = []

    def pool(max_workers):
        sizes.append(max_workers)
        raise Sized

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1, 2, 3}, raising=False)
    monkeypatch.setattr(runtimes, "ThreadPoolExecutor", pool)
    folder = tiny_quantized[0]
    probe = load_probe(folder / PROBE)
    with pytest.raises(Sized):
        runtimes.record_runtimes({name: (folder / name).read_bytes() for name in CPU_FILES},
                                 {"lq": probe["lq"], "eps": probe["eps"]}, probe["hq"], ["ort"])
    assert sizes == [3]
