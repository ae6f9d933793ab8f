"""True on every machine: the CLI answers without loading torch/MCT/onnxruntime, a file a runtime computes
wrongly here is refused or flagged (never silently used), a file its manifest does not describe is refused,
and the machine's own faults (full disk, long names) end in one line with nothing half-written."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import no_temporaries, plant_wrong_scales, snapshot
from PIL import Image

from elir_edge.cli import main

HEAVY = ("torch", "model_compression_toolkit", "onnxruntime", "onnx", "openvino", "tensorrt_rtx", "tensorrt")
CLI_CALLS = [["--help"], ["export", "--help"], ["quantize", "--help"], ["restore", "--help"], ["bench", "--help"],
             ["build", "--help"], ["demo", "--help"], ["export", "x.pth", "--image-size", "abc"],
             ["bench"], ["quantize", "--batch", "0"], ["restore", "--engine", "m.onnx"], ["nosuchcommand"]]


def test_help_and_argument_errors_load_no_heavy_module():
    """Which modules a --help or an argument error loads, asked of a fresh interpreter (not a timing)."""
    code = ("import sys, contextlib, io; from elir_edge.cli import main\n"
            f"for argv in {CLI_CALLS!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        assert main(argv) in (0, 2), argv\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"the CLI loaded {run.stdout.strip()} to answer --help or a usage error"


def _wrong_copy(tiny_quantized, dst, name="model_int8_cpu.onnx"):
    """A copy of the quantized folder whose `name` computes wrongly (weight scales x4), on any CPU."""
    shutil.copytree(tiny_quantized[0], dst)
    plant_wrong_scales(dst, name)
    return dst


def test_restore_refuses_a_file_this_runtime_computes_wrongly(tiny_quantized, tmp_path, capsys):
    folder = _wrong_copy(tiny_quantized, tmp_path / "export")
    images = tiny_quantized[0].parent / "calib"
    out = tmp_path / "restored"
    code = main(["restore", "-q", "--engine", str(folder / "model_int8_cpu.onnx"), str(images), "-o", str(out)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1, err
    assert "computes model_int8_cpu.onnx wrongly on this machine" in err[0] and "nothing was written" in err[0]
    # the files the same runtime does compute right here are named, as measured now on this machine: the
    # CPU files quantize recorded as right here among them (none on a CPU that saturates 8-bit weights)
    report = json.loads((tiny_quantized[0] / "quant_report.json").read_text())
    right = [n for n, v in report["runtimes_here"]["ONNX Runtime CPU"].items()
             if v["computes_right"] and n != "model_int8_cpu.onnx"]
    assert all(n in err[0] for n in right)
    assert "which ONNX Runtime CPU computes right here" in err[0] or "use the float model.onnx" in err[0]
    assert not out.exists() or not any(out.iterdir())
    # the right file of the same folder restores as before
    assert main(["restore", "-q", "--engine", str(tiny_quantized[0] / "model_int8_cpu.onnx"), str(images),
                 "-o", str(out)]) == 0


def test_quantize_records_which_runtime_computes_each_file_right(tiny_quantized):
    from elir_edge.quantize.report import quantize_table

    report = tiny_quantized[1]
    reference = report["probe"]["reference_psnr_db"]
    cpu_files = {"model_int8_cpu.onnx", "model_int8_cpu_w8.onnx", "model_int8_cpu_s8.onnx"}
    assert set(reference) == {"model_int8.onnx", "model_int8_fp16.onnx", *cpu_files}
    # the CPU runtimes are checked on the CPU files; the TensorRT forms are probed where a CPU runtime opens them
    assert all(set(files) == cpu_files for files in report["runtimes_here"].values())
    ort = report["runtimes_here"]["ONNX Runtime CPU"]
    # ONNX Runtime computes the CPU form right on every x86 CPU (7-bit weights cannot saturate); its fused
    # QLinearConv rounds differently from the float evaluation of the Q/DQ pairs (0.5 dB on this tiny model),
    # well inside the margin that separates right from saturated (MARGIN_DB; saturation costs 20+ dB)
    from elir_edge.runtime.probe import MARGIN_DB

    assert ort["model_int8_cpu.onnx"]["computes_right"]
    assert abs(ort["model_int8_cpu.onnx"]["psnr_db"] - reference["model_int8_cpu.onnx"]) < MARGIN_DB
    # the reference is the file's own arithmetic: near what quantize's drift figure says for the same file
    assert abs(reference["model_int8.onnx"] - report["int8_vs_float"]["psnr_db"]) < 6
    assert "computed right here" in quantize_table(report)
    # which CPU file to ship here: 8-bit weights where the CPU has an int8 dot product and every runtime
    # computes them right (the features say the first, the recorded verdicts the second)
    from elir_edge.runtime.cpu_roof import cpu_features

    w8_right = all(files["model_int8_cpu_w8.onnx"]["computes_right"] for files in report["runtimes_here"].values())
    expected = "model_int8_cpu_w8.onnx" if cpu_features()["int8_dot_product"] and w8_right else "model_int8_cpu.onnx"
    assert report["cpu"]["ship"]["file"] == expected and "ship to the CPU" in quantize_table(report)


def test_a_file_its_manifest_does_not_describe_is_refused(tiny_quantized, tmp_path, capsys):
    """model.onnx copied in from another export (here: the int8 graph under its name)."""
    folder = tmp_path / "export"
    shutil.copytree(tiny_quantized[0], folder)
    shutil.copy(folder / "model_int8.onnx", folder / "model.onnx")
    for argv in (["quantize", "-q", "--model", str(folder), "--calib", str(tiny_quantized[0].parent / "calib"),
                  "--no-engine"],
                 ["restore", "-q", "--engine", str(folder / "model.onnx"), str(tiny_quantized[0].parent / "calib"),
                  "-o", str(tmp_path / "o")],
                 ["bench", "--engine", str(folder / "model.onnx"), "--iterations", "1", "--duration", "0"]):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, (argv, err)
        assert "model.onnx is not the file its manifest.json describes" in err[0] and "export` again" in err[0]


@pytest.fixture
def file_size_limit():
    """Writes beyond a few bytes fail with a real OS error (EFBIG), as on a full disk; SIGXFSZ ignored so the
    process gets the error instead of being killed. Restored after the test."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(nbytes: int):
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, old)
    signal.signal(signal.SIGXFSZ, handler)


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(small_ckpt, tmp_path, capsys, file_size_limit):
    ckpt, _ = small_ckpt
    out = tmp_path / "exp"
    before = snapshot(tmp_path)
    file_size_limit(1000)
    code = main(["export", "-q", str(ckpt), "--task", "denoising", "--image-size", "64", "-o", str(out)])
    file_size_limit(resource.RLIM_INFINITY)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert "File too large" in err[0] and "nothing half-written was kept" in err[0]
    assert not out.exists() and snapshot(tmp_path) == before
    no_temporaries(tmp_path)


def test_an_output_name_too_long_is_one_line(tiny_quantized, tmp_path, capsys):
    long = tmp_path / ("x" * 300)
    code = main(["restore", "-q", "--engine", str(tiny_quantized[0] / "model.onnx"),
                 str(tiny_quantized[0].parent / "calib"), "-o", str(long)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "File name too long" in err[0] and "shorter" in err[0], err


def test_an_animated_gif_is_restored_from_its_first_frame(tiny_quantized, tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)) for _ in range(3)]
    (tmp_path / "in").mkdir()
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "in" / "still.png")
    code = main(["restore", "-q", "--engine", str(tiny_quantized[0] / "model.onnx"), str(tmp_path / "in"),
                 "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0 and "restored 2 of 2" in captured.out
    assert "anim.gif has 3 frames: used the first" in captured.err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"anim.png", "still.png"}
    (tmp_path / "first").mkdir()  # the first frame on its own restores to the same pixels
    with Image.open(tmp_path / "in" / "anim.gif") as im:
        im.convert("RGB").save(tmp_path / "first" / "anim.png")
    assert main(["restore", "-q", "--engine", str(tiny_quantized[0] / "model.onnx"), str(tmp_path / "first"),
                 "-o", str(tmp_path / "out2")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "anim.png")),
                          np.asarray(Image.open(tmp_path / "out2" / "anim.png")))
