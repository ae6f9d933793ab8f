"""Every command's path arguments walked through one list of hostile values.

For each (command, argument, hostile value): a non-zero exit with exactly one line on stderr and no
traceback, or, where the README documents a skip (restore: unreadable images are skipped and counted;
an output that is an input is written under another name), that documented outcome in one line; and no
file outside the command's output is created or changed. A new command joins by adding its arguments
to PATH_ARGS; the test fails when a command of `elir-edge --help` is missing from it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import no_temporaries, snapshot
from PIL import Image

from elir_edge.cli import build_parser, main

# command -> {argument: kind}; kinds: file_in, dir_in (an export folder), image_dir_in (a folder of images),
# images_in (files or folders), file_out, dir_out.
# `base` gives a command line that works (or fails later than the argument under test), with {names}
# taken from the sandbox.
PATH_ARGS = {
    "export": {"base": ["{ckpt}", "--task", "denoising", "--image-size", "64", "-o", "{out}/exp"],
               "args": {0: "file_in", "-o": "dir_out"}},
    "quantize": {"base": ["--model", "{export}", "--calib", "{calib}", "--no-engine", "--runtime", "ort"],  # the
                 # paths are what is walked: ONNX Runtime's check alone, not OpenVINO's compile of each file too
                 "args": {"--model": "dir_in", "--calib": "image_dir_in", "--engine": "file_out"}},
    "restore": {"base": ["--engine", "{export}/model.onnx", "{images}", "-o", "{out}/restored"],
                "args": {"--engine": "file_in", 2: "images_in", "-o": "dir_out"}},
    "bench": {"base": ["--engine", "{export}/model.onnx", "--iterations", "1", "--duration", "0", "--warmup", "0",
                       "--data", "{images}"],
              "args": {"--engine": "file_in", "--data": "image_dir_in", "--lq": "image_dir_in", "--fid-weights": "file_in",
                       "--json": "file_out", "--plot": "file_out"}},
    "build": {"base": ["{export}/model.onnx", "-o", "{out}/m.engine"], "args": {0: "file_in", "-o": "file_out"}},
    "demo": {"base": ["-o", "{out}/demo"], "args": {"-o": "dir_out"}},
}


def test_every_command_is_walked():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(PATH_ARGS), "add the new command's path arguments to PATH_ARGS"


def _hostile(kind: str, sb: Path) -> dict[str, str]:
    """The same list for every argument of a kind: missing, wrong type of path, empty, truncated, random
    bytes, a valid file of the wrong kind, an unwritable location, the output equal to an input, an output
    named like a file of the user's."""
    if kind in ("file_in", "images_in"):
        values = {"missing": sb / "nope.bin", "a folder": sb / "afolder", "empty file": sb / "empty.bin",
                  "truncated file": sb / "truncated.onnx", "random bytes": sb / "random.bin",
                  "valid file of the wrong kind": sb / "photo.png" if kind == "file_in" else sb / "export/model.onnx"}
        if kind == "images_in":
            values["a folder"] = sb / "emptyfolder"
            values["an animated image"] = sb / "anim.gif"
        else:
            values["a file its manifest does not describe"] = sb / "mismatched/model.onnx"
        return {k: str(v) for k, v in values.items()}
    if kind in ("dir_in", "image_dir_in"):  # an export folder, or a folder of images
        wrong = sb / "export" if kind == "image_dir_in" else sb / "images"
        values = {"missing": sb / "nope", "a file": sb / "photo.png", "empty folder": sb / "emptyfolder",
                  "folder of random bytes": sb / "junkdir", "wrong kind of folder": wrong}
        if kind == "dir_in":
            values["an export whose model.onnx its manifest does not describe"] = sb / "mismatched"
        return {k: str(v) for k, v in values.items()}
    if kind == "file_out":
        return {k: str(v) for k, v in {"a folder": sb / "afolder", "unwritable": sb / "photo.png" / "x.out",
                                       "equal to an input": sb / "export/model.onnx",
                                       "a user's file": sb / "userfolder" / "results.engine",
                                       "a name too long": sb / "out" / ("n" * 300 + ".engine"),
                                       FULL_DISK: sb / "out" / "fresh.engine"}.items()}
    return {k: str(v) for k, v in {"a file": sb / "photo.png", "unwritable": sb / "photo.png" / "sub",
                                   "a user's folder with files": sb / "userfolder",
                                   "equal to an input": sb / "images", "a name too long": sb / "out" / ("n" * 300),
                                   FULL_DISK: sb / "out" / "fresh"}.items()}


FULL_DISK = "on a full disk"  # the command runs with writes past 64 bytes failing (RLIMIT_FSIZE: EFBIG)


@contextlib.contextmanager
def full_disk():
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, tiny_quantized):
    sb = tmp_path_factory.mktemp("walk")
    shutil.copytree(tiny_quantized[0], sb / "export")
    shutil.copy(next(tiny_quantized[0].parent.glob("*.pth")), sb / "ckpt.pth")
    shutil.copytree(tiny_quantized[0].parent / "calib", sb / "calib")
    (sb / "afolder").mkdir()
    (sb / "emptyfolder").mkdir()
    (sb / "junkdir").mkdir()
    rng = np.random.default_rng(0)
    (sb / "junkdir" / "a.png").write_bytes(rng.bytes(500))
    (sb / "empty.bin").write_bytes(b"")
    (sb / "random.bin").write_bytes(rng.bytes(4000))
    (sb / "truncated.onnx").write_bytes((sb / "export" / "model.onnx").read_bytes()[:3000])
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(sb / "photo.png")
    (sb / "images").mkdir()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(sb / "images" / "a.png")
    (sb / "userfolder").mkdir()
    (sb / "userfolder" / "notes.txt").write_text("the user's own file")
    (sb / "userfolder" / "results.engine").write_text("the user's own file, named like an output")
    (sb / "out").mkdir()
    frames = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)) for _ in range(3)]
    frames[0].save(sb / "anim.gif", save_all=True, append_images=frames[1:])
    shutil.copytree(sb / "export", sb / "mismatched")  # another export's graph under the manifest's name
    shutil.copy(sb / "export" / "model_int8.onnx", sb / "mismatched" / "model.onnx")
    return sb


def _quiet(command: str) -> list[str]:
    """-q where the command has it: an unknown option would stop every case at the parser."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return ["-q"] if any(a.dest == "quiet" for a in sub._actions) else []


def _cases():
    for command, spec in PATH_ARGS.items():
        for arg, kind in spec["args"].items():
            for name in _hostile(kind, Path("/")):
                yield pytest.param(command, arg, kind, name, id=f"{command}-{arg}-{name}")


# Outcomes the README documents instead of an error.
DOCUMENTED = {
    ("restore", 2, "valid file of the wrong kind"): "skipped",  # an unreadable image is skipped and counted
    ("restore", 2, "truncated file"): "skipped",
    ("restore", 2, "random bytes"): "skipped",
    ("restore", 2, "empty file"): "skipped",
    ("restore", "-o", "equal to an input"): "renamed",  # never over an input: written under another name
    ("restore", "-o", "a user's folder with files"): "beside",  # restored PNGs join the user's files
    ("restore", 2, "an animated image"): "first frame",  # restored from its first frame, said in one line
}


@pytest.mark.parametrize("command, arg, kind, name", list(_cases()))
def test_hostile_path(sandbox, command, arg, kind, name, capsys, monkeypatch):
    monkeypatch.chdir(sandbox)
    value = _hostile(kind, sandbox)[name]
    spec = PATH_ARGS[command]
    argv = [a.format(ckpt=sandbox / "ckpt.pth", export=sandbox / "export", calib=sandbox / "calib",
                     images=sandbox / "images", out=sandbox / "out") for a in spec["base"]]
    if isinstance(arg, int):
        argv[arg if command != "restore" else argv.index(str(sandbox / "images"))] = value
    elif arg in argv:
        argv[argv.index(arg) + 1] = value
    else:
        argv += [arg, value] + (["--hq", str(sandbox / "images")] if arg == "--lq" else [])
    output = sandbox / "out"
    before = snapshot(sandbox, output)
    with full_disk() if name == FULL_DISK else contextlib.nullcontext():
        code = main([command, *_quiet(command), *argv])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    outcome = DOCUMENTED.get((command, arg, name))
    assert not any("Traceback" in ln for ln in err)
    if outcome == "skipped":
        assert code == 1 and len(err) == 1 and "skipped" in err[0], err
    elif outcome == "beside":
        assert code == 0 and not err and (sandbox / "userfolder" / "a.png").is_file()
        (sandbox / "userfolder" / "a.png").unlink()
    elif outcome == "first frame":
        assert code == 0 and len(err) == 1 and "has 3 frames: used the first" in err[0], err
    elif outcome == "renamed":
        assert code == 0 and len(err) == 1 and "instead" in err[0], err
        assert (sandbox / "images" / "a.restored.png").is_file()
        (sandbox / "images" / "a.restored.png").unlink()  # the documented new file, and nothing else
    else:
        assert code == 2 and len(err) == 1 and ": error: " in err[0], (argv, err)
    if name == FULL_DISK:  # the machine's fault: said as such, and nothing partial in the output either
        assert "File too large" in err[0] and "nothing half-written was kept" in err[0], err
        assert not [p for p in output.rglob("*") if p.is_file()]
    assert snapshot(sandbox, output) == before, "a file outside the output was created or changed"
    no_temporaries(sandbox)
    shutil.rmtree(output)
    output.mkdir()


def test_unwritable_location_in_a_read_only_folder(sandbox, capsys, tmp_path):
    """A folder the process may not write (root passes permission checks, so /proc stands in)."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    code = main(["restore", "-q", "--engine", str(sandbox / "export/model.onnx"), str(sandbox / "images"),
                 "-o", "/proc/elir_edge_out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not writable" in err[0]
    assert os.path.exists("/proc") and not os.path.exists("/proc/elir_edge_out")
