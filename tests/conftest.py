"""Synthetic ELIR checkpoints of every preset's shapes, in both formats, for fast CPU tests; and the
plumbing of the mutation check (a planted bug named by ELIR_EDGE_MUTANT, results in the summary)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.arch import ArchConfig
from elir_edge.model.synthetic import random_model, save_checkpoint
from elir_edge.quantize.stage import QuantizeOptions, quantize_export

# Ray Data's usage poller (a driver thread started by the first Ray Data run, polling every 10 s, never stopped)
# outlives tests/test_ray.py in this process and logs to ray-data.log: under test_walk's full disk that write
# fails and logging prints a traceback to stderr, which the tests rightly refuse. The tests run without it.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# elir-edge's cache (OpenVINO's compiled models): one folder for the session, never the user's, shared by every
# process the session starts (pytest-xdist's workers, the mutation check's forks, the demo, Ray's workers inherit
# the environment); made and, at the end, removed by the first process, the one the marker names.
SESSION_MARK = "ELIR_EDGE_TEST_SESSION"
if SESSION_MARK not in os.environ or "ELIR_EDGE_CACHE" not in os.environ:
    os.environ[SESSION_MARK] = str(os.getpid())
    os.environ["ELIR_EDGE_CACHE"] = tempfile.mkdtemp(prefix="elir-edge-test-cache-")
SESSION_CACHE = Path(os.environ["ELIR_EDGE_CACHE"])

SMALL = ArchConfig(latent_channels=16, ae_width=32, unet_hid=32, ch_mult=(1, 2, 1, 2), n_mid_blocks=1,
                   rrdb_hid=16, n_rrdb=1)


MUTATION_RESULTS: list[tuple[str, str, str]] = []  # (mutant, description, caught by): test_mutations.py's "mutation"
WHEEL_DEMO: list[str] = []  # what the demo printed when run from the installed wheel: test_demo.py's "wheel_demo"


def pytest_configure(config):
    _cores_per_worker(config)
    name = os.environ.get("ELIR_EDGE_MUTANT")
    if name:
        from mutants import MUTANTS

        config._elir_mutant = pytest.MonkeyPatch()
        MUTANTS[name][1](config._elir_mutant)


def _cores_per_worker(config) -> None:
    """Under README's `-n 2`: each pytest-xdist worker (and every process it starts) on cores of its own, an even
    share of the machine's. Left to share them, each worker's torch, ONNX Runtime and OpenVINO threads wait on the
    other's (on 2 cores of a Zen 4 the suite took 697 s so, 557 s pinned). The libraries size their thread pools
    by the cores a process may use, so each runs as it would on a machine of its share's size."""
    worker = getattr(config, "workerinput", None)
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores, n = sorted(os.sched_getaffinity(0)), worker["workercount"]
    if n <= len(cores):
        mine = set(cores[int(worker["workerid"].removeprefix("gw"))::n])
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))


def pytest_unconfigure(config):
    if os.environ.get(SESSION_MARK) == str(os.getpid()):
        shutil.rmtree(SESSION_CACHE, ignore_errors=True)


def pytest_runtest_logreport(report):
    """The mutation check's and the wheel-path demo's lines come back as user properties of the tests that made
    them, so the summary lists them whether the tests ran here or on pytest-xdist's workers."""
    for key, value in report.user_properties if report.when == "call" else ():
        if key == "mutation":
            MUTATION_RESULTS.append(tuple(value))
        elif key == "wheel_demo":
            WHEEL_DEMO.append(value)


def pytest_terminal_summary(terminalreporter):
    for text in WHEEL_DEMO:
        terminalreporter.write_sep("=", "wheel-path demo")
        terminalreporter.write_line(text)
    if MUTATION_RESULTS:
        tr = terminalreporter
        caught = sum(1 for *_, by in MUTATION_RESULTS if by)
        tr.write_sep("=", f"mutation check: {caught} of {len(MUTATION_RESULTS)} planted bugs caught")
        for name, what, by in sorted(MUTATION_RESULTS):
            tr.write_line(f"{'CAUGHT ' if by else 'MISSED '} {name:16s} {what}" + (f"  <- {by}" if by else ""))


SPREAD = ("tests/test_export.py::test_export_every_preset_both_formats[",)  # heavy, no shared fixture
NEEDS_TINY_QUANTIZED_FIRST = "test_ray.py"  # of the Ray files, the one whose first test waits for tiny_quantized


def pytest_collection_modifyitems(items):
    """The Ray files run as one unit on one worker (below), test_ray.py last: its first test needs the tiny
    quantized export the other worker is making at that moment, so the Ray files that need none run meanwhile
    (tests of one file stay together and in their order: each file's module fixture is made once)."""
    items.sort(key=lambda item: item.path.name == NEEDS_TINY_QUANTIZED_FIRST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under README's `-n 2`: each test file runs whole on one worker, so its module fixtures are made once, and
    the files that start Ray run one after another on one worker, never two local Rays at once. The export of
    every preset (a third of test_export's time, no fixture shared) is shared out one test at a time: xdist hands
    out the scopes with the most tests first, so these come last and even out the two workers' ends."""
    from xdist.scheduler import LoadFileScheduling

    class FilesWithRayTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SPREAD):
                return nodeid
            scope = super()._split_scope(nodeid)
            return "ray" if Path(scope).name.startswith("test_ray") else scope

    return FilesWithRayTogether(config, log)


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr, which is returned."""
    from elir_edge.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every file under `root` (outside `skip`): what "no user file changed" is checked against."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and (skip is None or skip not in p.parents)}


def no_temporaries(root: Path) -> None:
    """No temporary file or folder of an atomic write (`.<name>...tmp`) left anywhere under `root`."""
    left = [p for p in root.rglob(".*tmp*")]
    assert not left, f"temporary files left behind: {left}"


def plant_wrong_file(folder: Path, name: str, model) -> None:
    """Replace an int8 file of a quantized folder (and its hash in the report) with a graph that computes
    wrongly, as a runtime that saturates would compute the right one: the report's figures and the probe stay
    those quantize recorded for the right file. Works the same on any CPU."""
    import json

    import onnx

    onnx.save(model, str(folder / name))
    report = json.loads((folder / "quant_report.json").read_text())
    report["files"][name]["sha256"] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "quant_report.json").write_text(json.dumps(report))


def plant_wrong_scales(folder: Path, name: str) -> None:
    """Make `name` of a quantized folder compute wrongly on any CPU (its weight scales x4), as plant_wrong_file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(folder / name))
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and \
                inits[n.input[0]].data_type == onnx.TensorProto.INT8:
            s = inits[n.input[1]]
            s.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(s) * np.float32(4), s.name))
    plant_wrong_file(folder, name, m)


def output_spread(model, size: int = 64) -> float:
    """Std of the model's output on a probe image: what a tolerance is measured against."""
    from elir_edge.model.synthetic import probe_inputs

    lq, eps = probe_inputs(1, size)
    with torch.no_grad():
        return float(model(lq, eps[:, :model.arch.latent_channels]).std())


@pytest.fixture
def small_ckpt(tmp_path):
    """A small over-parameterized training checkpoint (custom widths) and its model."""
    model = random_model(ArchConfig(**{**SMALL.to_dict(), "ch_mult": SMALL.ch_mult,
                                       "fmir_overparam": True, "mmse_overparam": True}))
    assert output_spread(model) > 0.1  # the output spans its range: comparisons of it mean something
    return save_checkpoint(model, tmp_path / "small.ckpt", "training"), model


def _once_per_session(request, tmp_path_factory, name: str, make):
    """`make(folder)` for a fixture made once per session: under pytest-xdist the first worker that needs it makes
    it in the workers' shared temporary folder, the other waits and reads it (`make` does nothing where it is made)."""
    if not hasattr(request.config, "workerinput"):
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{shared}.lock"):
        return make(shared)


@pytest.fixture(scope="session")
def tiny_quantized(request, tmp_path_factory):
    """A tiny export quantized end to end (MCT PTQ on the CPU), made once per session."""
    return _once_per_session(request, tmp_path_factory, "tiny_quantized", _tiny_quantized)


@pytest.fixture(scope="session")
def demo_folder(request, tmp_path_factory):
    """The bundled demo checkpoint exported (fp32 and fp16) as a user exports it, once per session; the tests only
    read it."""
    return _once_per_session(request, tmp_path_factory, "demo_export", _demo_export)


def _demo_export(tmp: Path) -> Path:
    from elir_edge.cli import main
    from elir_edge.demo import CHECKPOINT

    folder = tmp / "demo"
    if not (folder / "manifest.json").is_file():  # written last: a folder without it is a worker's that failed
        shutil.rmtree(folder, ignore_errors=True)
        assert main(["export", "-q", str(CHECKPOINT), "-o", str(folder)]) == 0
    return folder


def _tiny_quantized(tmp: Path) -> tuple[Path, dict]:
    """Make the tiny quantized export in `tmp` (unless made there already) and read it: (export folder, the
    report quantize returned); MCT's own Q/DQ graph for it goes to MCT_GRAPHS."""
    import json

    import onnx

    folder, graph, returned = tmp / "export", tmp / "mct_graph.onnx", tmp / "returned_report.json"
    if not returned.is_file():
        shutil.rmtree(tmp, ignore_errors=True)  # what a worker that failed here left: the next one starts afresh
        tmp.mkdir()
        model = random_model(SMALL, k=2, sigma=0.1)
        assert output_spread(model) > 0.1
        ckpt = save_checkpoint(model, tmp / "tiny.pth", "release")
        export_checkpoint(ckpt, ExportOptions(task="denoising", steps=2, image_size=(64, 64), output=folder),
                          quiet=True)
        calib = tmp / "calib"
        calib.mkdir()
        rng = np.random.default_rng(0)
        for i in range(4):  # smooth random images: something like photographs, not white noise
            img = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
            Image.fromarray(img).save(calib / f"{i}.png")
        import elir_edge.quantize.stage as stage

        real_export, seen = stage.export_quantized, []
        stage.export_quantized = lambda *a, **kw: seen.append(real_export(*a, **kw)) or seen[-1]
        try:
            report = quantize_export(QuantizeOptions(model=folder, calib=calib, keep_float=["enc.layers.0"]),
                                     quiet=True)
        finally:
            stage.export_quantized = real_export
        onnx.save(seen[0], str(graph))
        returned.write_text(json.dumps(report))
    MCT_GRAPHS[folder] = onnx.load(str(graph))
    return folder, json.loads(returned.read_text())


MCT_GRAPHS = {}  # export folder -> the Q/DQ graph MCT exported for it (tiny_quantized)


@pytest.fixture
def requantize(tiny_quantized, tmp_path, monkeypatch):
    """Quantize a copy of the tiny export again in seconds: MCT's PTQ is replaced by the Q/DQ graph it
    already produced for this very model, so the stages after it (rewrite, rules, drift, writing) run for real."""
    import onnx

    import elir_edge.quantize.stage as stage

    folder = tmp_path / "export"
    shutil.copytree(tiny_quantized[0], folder)
    graph = MCT_GRAPHS[tiny_quantized[0]]
    monkeypatch.setattr(stage, "quantize_module", lambda *a: None)
    monkeypatch.setattr(stage, "export_quantized",
                        lambda *a, **kw: onnx.ModelProto.FromString(graph.SerializeToString()))

    def run(**kw):  # checked on ONNX Runtime alone unless asked: OpenVINO's verdicts are the shared export's
        kw.setdefault("runtimes", ["ort"])  # (every installed runtime) and test_cpu's, test_choose's, the demo's
        return quantize_export(QuantizeOptions(model=folder, calib=tiny_quantized[0].parent / "calib", **kw),
                               quiet=True)
    return folder, run


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory):
    """An Inception network of the reference architecture (torch-fidelity's) with random weights, saved as
    a plain tensor file: it exercises the FID/KID code end to end, and can show nothing about real FID."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    folder = tmp_path_factory.mktemp("fid")
    torch.save({}, folder / "empty.pth")
    real_load = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, *a, **k: None  # keep the random init
    try:
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(folder / "empty.pth"))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = real_load
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # features of a useful scale:
        bn.reset_running_stats()                                                # statistics of one random batch
        bn.momentum = None
    net.train()
    with torch.no_grad():
        net((torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255).byte())
    net.eval()
    path = folder / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return path
