"""The bundled trained demo model: loads, folds, exports faithfully, and actually restores."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elir_edge.model.eval_inputs import eval_inputs
from elir_edge.runtime.compare import per_image
from elir_edge.common.images import load_images
from elir_edge.demo import CHECKPOINT, HELDOUT_DIR
from elir_edge.model.checkpoint import load_checkpoint
from elir_edge.runtime.cpu_roof import cpu_features
from elir_edge.runtime.ort import OrtRunner


ROOT = Path(__file__).resolve().parents[1]


WHEEL_LOGS: dict[Path, str] = {}  # demo_export's folder -> what the wheel's demo printed


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
    """The demo as a user who installed the wheel runs it: a wheel built from the checkout, installed (without
    its dependencies, which this environment has) into a folder of its own, `elir-edge demo` run from an
    empty folder, outside the checkout. Everything it needs must ship inside the package."""
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(base / "dist"), str(ROOT)], check=True, cwd=base)
    wheel = next((base / "dist").glob("elir_edge-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(base / "site"),
                    str(wheel)], check=True)
    empty = base / "empty"
    empty.mkdir()
    code = ("import sys, elir_edge; from elir_edge.cli import main; "
            "print('elir_edge from', elir_edge.__file__, file=sys.stderr); sys.exit(main(['demo', '-q']))")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], cwd=empty, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(base / "site")})
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"elir_edge from {base / 'site'}" in run.stderr  # the wheel's copy ran, not the checkout's
    out = empty / "export" / "elir_demo"
    calib = json.loads((out / "quant_report.json").read_text())["calibration"]["folder"]
    assert Path(calib).is_relative_to(base / "site")  # calibrated on the photographs inside the wheel
    WHEEL_LOGS[out] = (f"{wheel.name} installed into its own folder, `elir-edge demo` run from an empty folder: "
                       f"exit 0 in {time.perf_counter() - t0:.0f} s; calibrated on {calib}\n" + run.stdout)
    return out


def test_bundled_checkpoint_is_a_training_checkpoint_with_overparameterized_blocks():
    ckpt = load_checkpoint(CHECKPOINT)
    assert ckpt.format == "training"
    assert ckpt.arch.fmir_overparam and ckpt.arch.mmse_overparam
    assert ckpt.hyper["task"] == "denoising"


def test_demo_export_is_faithful(demo_export):
    """Our own run of the exported graph against the over-parameterized checkpoint, looped in PyTorch."""
    import torch

    from elir_edge.model.arch import build_elir

    ckpt = load_checkpoint(CHECKPOINT)
    h = ckpt.hyper
    reference = build_elir(ckpt.arch, h["k_steps"], h["sigma_s"], ckpt.state_dict())
    es = eval_inputs(load_images(HELDOUT_DIR)[:2], "denoising", 256, 256, 16, seed=5)
    with torch.no_grad():
        ref = reference(torch.from_numpy(es.lq), torch.from_numpy(es.eps)).numpy()
    got = OrtRunner(demo_export / "model.onnx")(es.lq, es.eps)
    assert ref.std() > 0.1 and np.abs(got - ref).max() <= 1e-3 * ref.std()


def test_restored_beats_degraded_on_two_heldout_images(demo_export):
    images = [i for i in load_images(HELDOUT_DIR) if i[0] in ("astronaut_0.png", "chelsea_0.png")]
    assert len(images) == 2
    es = eval_inputs(images, "denoising", 256, 256, 16, seed=123)
    restored = OrtRunner(demo_export / "model.onnx")(es.lq, es.eps)
    before, after = per_image(es.lq, es.hq), per_image(restored, es.hq)
    for b, a in zip(before["psnr"], after["psnr"]):
        assert a > b + 2.0
    for b, a in zip(before["ssim"], after["ssim"]):
        assert a > b


def test_demo_writes_strip_and_report(demo_export, record_property):
    report = json.loads((demo_export / "demo_report.json").read_text())
    q = report["bench"]["quality"]
    fp32, int8 = report["bench"]["rows"]
    chosen = Path(int8["artifact"]).name  # the folder's best CPU file here (runtime.choose)
    assert chosen in ("model_int8_cpu_w8.onnx", "model_int8_cpu.onnx")
    if cpu_features()["int8_dot_product"]:  # VNNI/AMX: the 8-bit weights compute right
        assert chosen == "model_int8_cpu_w8.onnx"
    panels = _strip_inputs(demo_export, report["seed"], chosen)
    # PSNR vs the truth worked out here on the inputs bench used (its seed): the float model and the degraded input
    want = {k: np.mean([_psnr(o, t) for o, t in zip(panels[k], panels["truth"])]) for k in ("fp32", "degraded")}
    assert fp32["vs_gt"]["psnr"]["mean"]["value"] == pytest.approx(want["fp32"], abs=1e-3)
    assert q["degraded_vs_gt"]["psnr"]["mean"]["value"] == pytest.approx(want["degraded"], abs=1e-3)
    assert int8["vs_float"]["psnr"]["mean"]["value"] > 35
    assert report["quantize"]["size_ratio"] <= 0.3
    files = report["quantize"]["files"]
    assert files["model_int8_cpu.onnx"]["ratio_vs_float"] < 0.35 and files["model_int8_fp16.onnx"]["ratio_vs_float"] < 0.35
    int8, half = report["quantize"]["int8_vs_float"]["psnr_db"], report["quantize"]["int8_fp16_vs_float"]["psnr_db"]
    assert abs(half - int8) < 0.5  # the int8+fp16 graph within 0.5 dB of the int8 graph with fp32 float parts
    engine = report["quantize"]["engine"]
    try:
        import tensorrt_rtx  # noqa: F401
    except ImportError:
        assert not engine["built"]
    else:  # README's install command brings it: the demo builds the RTX 2080 Ti engine here, without a GPU
        # the RTX 2080 Ti's artifact: FP16, which NVIDIA's TensorRT-RTX matrix lists for Turing (not INT8)
        assert engine["built"] and engine["target_sms"] == ["75"] and engine["precision"] == "fp16"
        assert (demo_export / "model_fp16.rtx.engine").is_file() and engine["onnx"] == "model_fp16.onnx"
        assert not [n for n in engine["support"] if "unverified" in n]
    # ONNX Runtime computes the CPU form (7-bit weights) right on any x86 CPU; the demo says so per runtime
    assert report["quantize"]["runtimes_here"]["ONNX Runtime CPU"]["model_int8_cpu.onnx"]["computes_right"]
    record_property("wheel_demo", WHEEL_LOGS[demo_export])  # for the log's "wheel-path demo" section
    assert "int8 files on this machine's CPU runtimes: ONNX Runtime CPU: " in WHEEL_LOGS[demo_export]
    roof = report["bench"]["cpu_roof"]
    from elir_edge.runtime.cpu_roof import PAYS

    have = cpu_features()["int8_dot_product"]  # this machine's, as the demo ran here
    pays = "int8 pays on this CPU" if roof["int8_vs_fp32"] >= PAYS else "int8 does not pay on this CPU"
    assert roof["fp32_gmac_s"] > 0 and roof["verdict"].startswith(pays)
    assert (f"the CPU has {have}" if have else "the CPU has no int8 dot-product instruction") in roof["verdict"]
    strip = Image.open(demo_export / "demo_strip.png")
    assert strip.width >= 4 * 256 and strip.height >= q["images"] * 256
    assert Image.open(demo_export / "demo_bench.png").width > 100
    _assert_strip_shows(np.asarray(strip.convert("RGB")), panels)


def _psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def _strip_inputs(folder, seed, int8_file):
    """What the demo says its strip shows, computed here: the held-out images degraded with the demo's seed,
    the fp32 and CPU int8 graphs run on them, the clean images (NCHW float in [0, 1])."""
    es = eval_inputs(load_images(HELDOUT_DIR), "denoising", 256, 256, 16, seed=seed)
    return {"degraded": es.lq, "fp32": OrtRunner(folder / "model.onnx")(es.lq, es.eps),
            "int8": OrtRunner(folder / int8_file)(es.lq, es.eps), "truth": es.hq}


def _assert_strip_shows(strip, panels):
    """Each panel of the strip cropped out (the gap and label band worked out from the strip's size) equals the
    image it is labelled with, rounded to uint8 here: exact for the input and the truth, within one level for
    the model outputs (a value at a rounding boundary may land either side on another thread count)."""
    rows, cols, h, w = len(panels["truth"]), 4, 256, 256
    gap = (strip.shape[1] - cols * w) // (cols - 1)
    top = strip.shape[0] - rows * h - (rows - 1) * gap
    assert strip.shape[1] == cols * w + (cols - 1) * gap and 0 < top < h
    for c, key in enumerate(("degraded", "fp32", "int8", "truth")):
        for r, img in enumerate(panels[key]):
            want = np.round(np.clip(img, 0, 1).transpose(1, 2, 0) * 255).astype(np.int16)
            got = strip[top + r * (h + gap):top + r * (h + gap) + h, c * (w + gap):c * (w + gap) + w].astype(np.int16)
            assert np.abs(got - want).max() <= (0 if key in ("degraded", "truth") else 1), (key, r)
