"""Every bad input: one line naming problem and fix, non-zero exit, no traceback, nothing written."""

from pathlib import Path

import pytest
import torch

from elir_edge.cli import main
from elir_edge.model.presets import preset_arch
from elir_edge.model.synthetic import random_model, save_checkpoint


class NotTensors:
    """Pickling this needs code: weights_only loading must refuse it."""

    def __init__(self):
        self.payload = [1, 2, 3]


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _bad_inputs(tmp: Path) -> dict:
    """name -> (argv, expected fragment of the message)."""
    sr = random_model(preset_arch("sr"))
    good = save_checkpoint(sr, tmp / "sr.pth", "release")
    (tmp / "empty.pth").write_bytes(b"")
    data = good.read_bytes()
    (tmp / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp / "text.pth").write_text("hello, not a checkpoint\n")
    torch.save({"model": NotTensors()}, tmp / "code.pth")
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).state_dict(), tmp / "other.pth")
    sd = sr.state_dict()
    missing = dict(sd)
    missing.pop("fmir.mid_blocks.0.conv2d.weight")
    torch.save(missing, tmp / "missing.pth")
    torch.save({**sd, "fmir.extra.weight": torch.zeros(3)}, tmp / "extra.pth")
    blocker = tmp / "a_file"
    blocker.write_text("x")
    small = ["--image-size", "64"]
    return {
        "missing path": ([str(tmp / "nope.pth")], "no such file"),
        "directory": ([str(tmp)], "is a directory"),
        "empty": ([str(tmp / "empty.pth")], "is empty"),
        "truncated": ([str(tmp / "trunc.pth"), "--task", "sr"], "not a readable PyTorch checkpoint"),
        "not torch": ([str(tmp / "text.pth")], "not a PyTorch checkpoint"),
        "needs code": ([str(tmp / "code.pth")], "needs arbitrary code to unpickle"),
        "other model": ([str(tmp / "other.pth")], "not an ELIR checkpoint"),
        "missing key": ([str(tmp / "missing.pth"), "--task", "sr"], "missing"),
        "extra key": ([str(tmp / "extra.pth"), "--task", "sr"], "unexpected key"),
        "contradicting task": ([str(good), "--task", "bfr"], "contradicts"),
        "no task": ([str(good)], "pass --task"),
        "size not /32": ([str(good), "--task", "sr", "--image-size", "100"], "multiple of 32"),
        "K < 1": ([str(good), "--task", "sr", "--steps", "0"], "--steps: 0 is not 1 or more"),
        "unwritable output": ([str(good), "--task", "sr", *small, "-o", str(blocker / "out")], "cannot be created"),
        "output is a file": ([str(good), "--task", "sr", *small, "-o", str(blocker)], "is a file"),
        "verification fails": ([str(good), "--task", "sr", *small, "--tolerance", "1e-12"], "verification failed"),
    }


def test_bad_inputs(tmp_path, capsys, monkeypatch):
    cases = _bad_inputs(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # the default output folder export/<stem> would land here
    for name, (argv, fragment) in cases.items():
        code, err = _run(capsys, ["export", "-q", *argv])
        assert code == 2, name
        assert len(err) == 1, (name, err)
        assert fragment in err[0] and ": " in err[0], (name, err)
        assert "Traceback" not in err[0]
    assert not any(work.rglob("*")), "a failed export left files behind"
    leftovers = [p.name for p in tmp_path.rglob(".*tmp*")]
    assert not leftovers


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc as a folder nobody can write")
def test_readonly_output(tmp_path, capsys):
    good = save_checkpoint(random_model(preset_arch("bsr")), tmp_path / "b.pth", "release")
    code, err = _run(capsys, ["export", "-q", str(good), "-o", "/proc/elir_edge_out"])
    assert code == 2 and len(err) == 1 and "not writable" in err[0]


def test_export_cli_success_prints_table(tmp_path, capsys):
    good = save_checkpoint(random_model(preset_arch("bsr")), tmp_path / "b.pth", "release")
    code = main(["export", str(good), "--image-size", "64", "-o", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert code == 0
    for label in ("deployed params", "GMACs / image", "ONNX size", "fold error", "ONNX vs PyTorch", "time"):
        assert label in out
    assert "[7/7] write weights and manifest" in err and "fp16 graph" in out


def test_artifacts_get_ordinary_permissions(tmp_path):
    import os

    from elir_edge.common.files import atomic_dir, write_json

    mask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "a") as d:
            write_json(d / "m.json", {"x": 1})
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "a" / "m.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)


@pytest.mark.parametrize("argv, fragment", [
    (["bench", "--engine", "m.onnx", "--iterations", "0"], "--iterations: 0 is not 1 or more"),
    (["bench", "--engine", "m.onnx", "--duration", "-1"], "--duration: -1 is not 0 or more"),
    (["bench", "--engine", "m.onnx", "--threads", "0"], "--threads: 0 is not 1 or more"),
    (["restore", "--engine", "m.onnx", "a.png", "-o", "o", "--batch", "0"], "--batch: 0 is not 1 or more"),
    (["restore", "--engine", "m.onnx", "a.png", "-o", "o", "--tile", "-32"], "--tile: -32 is not 1 or more"),
    (["restore", "--engine", "m.onnx", "a.png", "-o", "o", "--overlap", "x"], "'x' is not a whole number"),
    (["export", "m.pth", "--steps", "-2"], "--steps: -2 is not 1 or more"),
    (["export", "m.pth", "--tolerance", "0"], "--tolerance: 0 is not more than 0"),
    (["quantize", "--holdout", "-1"], "--holdout: -1 is not 0 or more"),
    (["quantize", "--num-images", "0"], "--num-images: 0 is not 1 or more"),
])
def test_numeric_arguments_are_checked_in_one_line(capsys, argv, fragment):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0] and "--help" in err[0]
