"""Ctrl-C in the middle of export, quantize, build and restore: exit 130, no partial artifact, every file
that existed before unchanged. Each command runs in its own process and gets a real SIGINT once its
progress shows it is mid-work."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import no_temporaries, snapshot
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _interrupt(argv: list[str], marker: str, cwd: Path, delay: float = 0.5, timeout: float = 300) -> tuple[int, str]:
    """Start `elir-edge argv`, wait for `marker` on stderr, wait `delay` more, send SIGINT; (code, stderr)."""
    # A shell that starts a job in the background (as CI runners may) makes it ignore SIGINT, and the child
    # inherits that: give the command the terminal's default so the test sends what a user's Ctrl-C sends.
    proc = subprocess.Popen([sys.executable, "-u", "-m", "elir_edge.cli", *argv], cwd=cwd, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, bufsize=1,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ch = proc.stderr.read(1)
        if not ch:
            break
        seen += ch
    assert marker in seen, f"never reached {marker!r}: {seen[-500:]}"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    return proc.wait(timeout=120), seen + rest


@pytest.fixture
def work(tmp_path, tiny_quantized):
    shutil.copytree(tiny_quantized[0], tmp_path / "export")
    shutil.copy(next(tiny_quantized[0].parent.glob("*.pth")), tmp_path / "ckpt.pth")
    shutil.copytree(tiny_quantized[0].parent / "calib", tmp_path / "calib")
    return tmp_path


def test_ctrl_c_during_export_keeps_the_old_export(work):
    before = snapshot(work)
    code, err = _interrupt(["export", "ckpt.pth", "--task", "denoising", "--steps", "2", "--image-size", "256",
                            "-o", "export"], "[4/7]", work, delay=0.3)
    assert code == 130 and "interrupted" in err.splitlines()[-1], f"exit {code}: {err[-1500:]}"
    assert snapshot(work) == before
    no_temporaries(work)


def test_ctrl_c_during_quantize_keeps_the_old_artifacts(work):
    before = snapshot(work)
    code, err = _interrupt(["quantize", "--model", "export", "--calib", "calib"], "MCT post-training", work, delay=2)
    assert code == 130 and "interrupted" in err.splitlines()[-1], f"exit {code}: {err[-1500:]}"
    assert snapshot(work) == before
    no_temporaries(work)


def test_ctrl_c_that_python_wraps_during_an_import_is_still_ctrl_c(monkeypatch, capsys):
    """Ctrl-C landing while a library's import runs a class body's __set_name__ reaches the command as Python
    3.11's RuntimeError("Error calling __set_name__ ...") (a CI run: Ctrl-C while MCT's import reached triton,
    exit 1 with a traceback); it is an interruption, and an error with no Ctrl-C behind it stays an error."""
    import elir_edge.cli as cli

    class Trips:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_quantize", lambda args: type("tuple_type", (), {"name": Trips()}))
    assert cli.main(["quantize"]) == 130
    assert capsys.readouterr().err == "elir-edge quantize: interrupted; nothing half-written was kept\n"

    def broken(args):
        raise RuntimeError("Error calling __set_name__ on 'cached_property' instance 'name' in 'tuple_type'")

    monkeypatch.setattr(cli, "run_quantize", broken)
    with pytest.raises(RuntimeError, match="__set_name__"):
        cli.main(["quantize"])


def test_ctrl_c_during_build_writes_no_engine(work):
    pytest.importorskip("tensorrt_rtx")
    before = snapshot(work)
    code, err = _interrupt(["build", "export/model_int8.onnx", "--sm", "75", "--sm", "86", "-o", "export/x.engine"],
                           "building", work, delay=0.3)
    assert code == 130 and "interrupted" in err.splitlines()[-1], err
    assert snapshot(work) == before
    no_temporaries(work)


def test_ctrl_c_during_restore_leaves_only_whole_images(work):
    rng = np.random.default_rng(0)
    (work / "photos").mkdir()
    for i in range(20):  # tiled in 64 px tiles: long enough to be caught in the middle
        Image.fromarray(rng.integers(0, 255, (384, 384, 3), np.uint8)).save(work / "photos" / f"{i:02d}.png")
    (work / "out").mkdir()
    (work / "out" / "keep.txt").write_text("the user's")
    before = snapshot(work)
    code, err = _interrupt(["restore", "--engine", "export/model.onnx", "photos", "-o", "out", "--tile", "64"],
                           "restore:", work, delay=1.5)
    assert code == 130 and "interrupted" in err.splitlines()[-1], f"exit {code}: {err[-1500:]}"
    after = snapshot(work)
    assert {k: v for k, v in after.items() if not k.startswith("out/")} == \
        {k: v for k, v in before.items() if not k.startswith("out/")}
    assert after["out/keep.txt"] == before["out/keep.txt"]
    written = sorted((work / "out").glob("*.png"))
    assert len(written) < 20
    for p in written:  # every restored image that exists is whole
        with Image.open(p) as im:
            im.load()
            assert im.size == (384, 384)
    no_temporaries(work)
