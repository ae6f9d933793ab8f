"""Past one machine (`--ray`): the same outputs as one process, byte for byte; a worker or a whole node that
dies mid-run loses nothing; a poison image is one failed row; `--resume` keeps what is done; a cluster that
cannot be reached or used is one line.

One Ray cluster on this machine serves the whole module: a head of 0 CPUs (the driver's) and two worker nodes
of 1 CPU each (ray.cluster_utils.Cluster); each test's work is a handful of 64 px images, and the one-process
outputs the runs are held to are restored once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import no_temporaries
from PIL import Image

import elir_edge.restore.on_ray as on_ray
from elir_edge.cli import main
from elir_edge.common.rows import partial_path


@pytest.fixture(scope="module")
def fleet():
    """The cluster, connected; tests that remove a node add one back."""
    import ray
    from ray.cluster_utils import Cluster

    fast_death = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                  "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "_system_config": fast_death})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    Path(ray._private.utils.get_ray_address_file(None)).unlink(missing_ok=True)  # no `ray.init()` here joins it
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's own actors travel by value
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Seven images of assorted sizes and one file that is not an image (the tests only read them)."""
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("photos")
    for i, (h, w) in enumerate([(64, 64), (80, 48), (100, 130), (64, 64), (48, 96), (72, 72), (64, 90)]):
        img = np.kron(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))[:h, :w]
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


@pytest.fixture(scope="module")
def one_process(tiny_quantized, photos, tmp_path_factory) -> dict[str, bytes]:
    """The outputs of `photos` restored in one process, without Ray: what every run on the cluster must write."""
    out = tmp_path_factory.mktemp("one") / "out"
    assert _restore(tiny_quantized[0], photos, out) == 0
    return _pngs(out)


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _restore(export: Path, photos: Path, out: Path, *extra: str) -> int:
    return main(["restore", str(export / "model.onnx"), str(photos), "-o", str(out), "-q", "--threads", "1", *extra])


def test_ray_writes_the_same_bytes_as_one_process(fleet, tiny_quantized, photos, one_process, tmp_path, capsys):
    export = tiny_quantized[0]
    assert _restore(export, photos, tmp_path / "ray", "--ray", "--actors", "2",
                    "--report", str(tmp_path / "ray.jsonl")) == 0
    assert len(one_process) == 7 and _pngs(tmp_path / "ray") == one_process  # the unreadable file a row, not a crash
    rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert rows[0]["where"].startswith("Ray cluster") and rows[0]["inputs"] == 8
    status = {Path(r["path"]).name: r["status"] for r in rows[1:]}
    assert status.pop("broken.png") == "failed" and set(status.values()) == {"restored"} and len(status) == 7
    assert "skipped" in capsys.readouterr().err


def test_the_cluster_plans_each_folder_and_the_outputs_mirror_the_tree(fleet, tiny_quantized, photos, one_process,
                                                                      tmp_path, monkeypatch):
    """On Ray the driver only walks the folders' names: each output folder's images are listed, stat'ed and
    named by a task on the cluster (here the driver's own planner fails if called), and the outputs mirror the
    input tree with the bytes one process writes (an image's output depends on it and the seed alone, not on
    where it sits: test_restore has one process mirror a tree)."""
    import shutil

    export, tree = tiny_quantized[0], tmp_path / "tree"
    for i, p in enumerate(sorted(photos.glob("p*.png"))):
        (tree / ("a" if i < 3 else "b/c")).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tree / ("a" if i < 3 else "b/c") / p.name)

    def not_here(*a):
        raise AssertionError("the driver planned a shard")

    monkeypatch.setattr(on_ray, "plan_shard", not_here)
    assert _restore(export, tree, tmp_path / "ray", "--ray", "--actors", "2") == 0
    ray = {p.relative_to(tmp_path / "ray").as_posix(): p.read_bytes() for p in (tmp_path / "ray").rglob("*.png")}
    assert sorted(ray) == ["a/p0.png", "a/p1.png", "a/p2.png", "b/c/p3.png", "b/c/p4.png", "b/c/p5.png",
                           "b/c/p6.png"]
    assert {Path(k).name: v for k, v in ray.items()} == one_process


class DiesOnce(on_ray.RestoreActor):
    """A worker that leaves a half-written temporary beside one output and dies, once in the whole run."""
    marker = ""

    def _one(self, item: dict):
        if item["index"] == 2 and not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            target = Path(item["target"])
            (target.parent / f".{target.name}.x1y2z3.tmp").write_bytes(b"half")
            os._exit(1)
        return super()._one(item)


def test_a_worker_killed_mid_run_loses_nothing(fleet, tiny_quantized, photos, one_process, tmp_path, monkeypatch):
    export = tiny_quantized[0]
    DiesOnce.marker = str(tmp_path / "died")
    monkeypatch.setattr(on_ray, "RestoreActor", DiesOnce)
    assert _restore(export, photos, tmp_path / "ray", "--ray", "--actors", "2") == 0
    assert (tmp_path / "died").exists()  # the fault did happen
    assert _pngs(tmp_path / "ray") == one_process
    no_temporaries(tmp_path / "ray")


def test_resume_keeps_what_is_done_and_redoes_the_rest(fleet, tiny_quantized, photos, tmp_path, capsys):
    export, out = tiny_quantized[0], tmp_path / "out"
    assert _restore(export, photos, out) == 0
    first = _pngs(out)
    (out / "p3.png").unlink()
    (out / "p5.png").write_bytes(first["p0.png"])  # ours, but another input's result: redone
    os.utime(out / "p1.png", (1, 1))
    capsys.readouterr()
    assert _restore(export, photos, out, "--resume", "--ray") == 0
    said = capsys.readouterr().out
    assert "5 already restored, kept (--resume)" in said and "restored 2 of 8" in said
    assert _pngs(out) == first and os.stat(out / "p1.png").st_mtime == 1  # kept, not rewritten
    assert _restore(export, photos, out, "--resume", "--seed", "1") == 0  # other settings: all redone
    assert "already restored" not in capsys.readouterr().out


def test_without_ray_installed_the_fix_is_named(tiny_quantized, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert _restore(tiny_quantized[0], photos, tmp_path / "out", "--ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'elir-edge[ray]'" in err[0]


def test_a_cluster_that_does_not_answer_is_one_line(tiny_quantized, photos, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _restore(tiny_quantized[0], photos, tmp_path / "out", "--ray", f"ray://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot reach the Ray cluster at ray://127.0.0.1:{port}" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_worker_whose_runtime_computes_the_int8_file_wrongly_scores_and_restores_nothing(tiny_quantized, photos,
                                                                                           tmp_path, monkeypatch):
    """Nodes differ: each actor probes the int8 file on its own CPU, and where the probe fails its images come
    back as failures naming the reason, not as figures or PNGs. The actor classes are plain classes, run here
    in this process with the probe made to fail."""
    from dataclasses import asdict

    import elir_edge.runtime.probe as probe
    from elir_edge.bench.artifacts import open_artifact
    from elir_edge.bench.on_ray import ScoreActor, actor_settings
    from elir_edge.bench.quality import ScoreSettings, items
    from elir_edge.bench.stage import BenchOptions
    from elir_edge.common.files import sha256_file
    from elir_edge.restore.image import resolve
    from elir_edge.restore.on_ray import RestoreActor
    from elir_edge.restore.plan import plan_jobs

    int8, photo = tiny_quantized[0] / "model_int8.onnx", photos / "p0.png"
    opts = BenchOptions(engines=[int8], threads=1)
    with open_artifact(int8, opts, spin=False) as art:
        h, w = art.interface.size
        score = actor_settings(opts, [art], art, ScoreSettings("denoising", h, w, art.interface.latent_channels, 0),
                               None)
        interface = art.interface
        here = probe.probe_runner(art)  # what this machine's runtime does with the file, before the fault
    item = {"item": np.array([json.dumps(items(["p0"], [photo])[0])], dtype=object)}
    expected = "scored" if here is None or here.ok else "failed"
    assert json.loads(ScoreActor(score)(item)["row"][0])["status"] == expected
    job = plan_jobs([photo], tmp_path / "out", False)[0]
    restore = asdict(resolve(int8, sha256_file(int8), interface, None, None, 16, 0, 1, "ort", 1))
    wrong = probe.ProbeResult("model_int8.onnx", "ONNX Runtime CPU", 12.0, 40.0)
    monkeypatch.setattr(probe, "probe_runner", lambda runner: wrong)
    (tmp_path / "out").mkdir()
    jobs = {"item": np.array([json.dumps(job.to_dict())], dtype=object)}
    for actor, batch in ((ScoreActor(score), item), (RestoreActor(restore), jobs)):
        row = json.loads(actor(batch)["row"][0])
        assert row["status"] == "failed" and "computes model_int8.onnx wrongly" in row["error"], row
        assert "on this worker" in row["error"] or "on this Ray worker" in row["error"]
    assert not list((tmp_path / "out").iterdir())


def test_a_node_that_cannot_see_the_output_folder_is_named(tmp_path):
    from elir_edge.cluster.ray_data import _sees

    marker = tmp_path / ".elir-edge-reach-abc"
    assert "does not see the output folder" in _sees(str(marker), "abc", [])
    marker.write_text("abc")
    assert _sees(str(marker), "abc", [str(tmp_path / "nope.png")]).startswith("cannot read")
    assert _sees(str(marker), "abc", [str(marker)]) is None


def test_bench_quality_through_ray_equals_one_process(fleet, tiny_quantized, photos, random_inception, tmp_path):
    """Per-image rows computed on a Ray worker (another process, on another node; both nodes checked first) and
    aggregated on the driver: every figure equal to one process's, FID/KID (float64 sums of the same features, KID
    subsets from the same seed) included. One actor: given two, Ray Data handed all three images to the first one
    up (seen on 2026-12-08) while the second started for nothing."""
    from elir_edge.bench.stage import BenchOptions, run_bench

    export, data = tiny_quantized[0], tmp_path / "data"
    data.mkdir()
    for name in ("p0.png", "p2.png", "p4.png", "broken.png"):
        (data / name).write_bytes((photos / name).read_bytes())

    def bench(**ray):
        return run_bench(BenchOptions(engines=[export / "model_int8.onnx"], data=data,
                                      threads=1, iterations=2, duration=0, warmup=0, cpu_roof=False,
                                      fid_weights=random_inception, progress=False, **ray))

    one, spread = bench(), bench(ray="local", actors=1, report=tmp_path / "rows.jsonl")
    assert spread["quality"]["where"].startswith("Ray") and one["quality"]["where"] == "this process"
    from elir_edge.bench.report import bench_tables

    assert "quality pass on the Ray cluster (local)" in bench_tables(spread)
    assert "1 image(s) not scored, not counted (e.g. " in bench_tables(one)
    assert "1 x not a readable image (UnidentifiedImageError)" in bench_tables(one)
    assert "over the cluster" not in bench_tables(one)
    for key in ("images", "failed", "failures", "noise_floor_vs_float", "degraded_vs_gt"):
        assert spread["quality"][key] == one["quality"][key], key
    assert one["quality"]["images"] == 3 and len(one["quality"]["failed"]) == 1
    (a,), (b,) = one["rows"], spread["rows"]
    for key in ("vs_gt", "vs_float", "fid_kid_vs_gt", "fid_kid_vs_float"):
        assert a[key] == b[key], key
    assert a["fid_kid_vs_gt"]["available"] and a["vs_float"]["psnr"]["n"] == 3
    rows = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 1 + 4 and json.loads(rows[0])["kind"] == "elir-edge bench report"


def test_ray_alone_starts_a_fresh_ray_here_and_auto_joins(monkeypatch):
    """`--ray` alone never joins RAY_ADDRESS's cluster or the host's last `ray start` (maybe long dead)."""
    import ray

    from elir_edge.cluster.ray_data import LOCAL, cluster

    asked = []
    monkeypatch.setenv("RAY_ADDRESS", "10.9.9.9:6379")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda address=None, **kw: asked.append(address))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    for address in (LOCAL, "auto"):
        with cluster(address):
            pass
    assert asked == ["local", "auto"]


def test_a_ray_version_mismatch_is_named_as_such():
    from ray._private.utils import check_version_info

    from elir_edge.cluster.ray_data import refusal

    with pytest.raises(RuntimeError) as e:  # Ray's own check, as ray.init runs it against the cluster's GCS
        check_version_info({"ray_version": "2.9.0", "python_version": "3.10.4"}, "this node")
    line = refusal("10.0.0.5:6379", e.value)
    assert "\n" not in line and line.startswith("the Ray cluster at 10.0.0.5:6379 runs Ray 2.9.0 on Python 3.10.4")
    assert "pip install 'ray[data]==2.9.0'" in line and "cannot reach" not in line


def test_a_node_without_elir_edge_is_named_with_the_install_line(fleet, tmp_path, monkeypatch):
    """The check runs on every node; one whose workers cannot load it (here: its code is in a module only the
    driver has) is one line naming the node and the fix, not a ModuleNotFoundError from a worker."""
    import ray

    import elir_edge.cluster.ray_data as ray_data

    (tmp_path / "driver_only.py").write_text("def check(marker, token, reads, work):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import driver_only

    monkeypatch.setattr(ray_data, "_check_node", driver_only.check)
    with pytest.raises(ray_data.UserError) as e:
        ray_data.check_nodes(ray, ray_data.Work(on_ray.RestoreActor, {}), [tmp_path])
    assert str(e.value).startswith("the Ray node ") and "cannot import elir-edge" in str(e.value)
    assert "(and 1 more nodes): no node can take part" in str(e.value)
    assert "pip install 'elir-edge[ray]==" in str(e.value) and "\n" not in str(e.value)
    asleep = ray.remote(num_cpus=0)(lambda: __import__("time").sleep(30)).remote()
    assert ray_data._answer(ray, asleep, 0.1, 0.1).startswith("did not answer the check within 0.1 s")
    ray.cancel(asleep, force=True)


def test_the_driver_reads_an_engines_manifest_never_the_engine(fleet, tiny_quantized, photos, tmp_path,
                                                              monkeypatch):
    """A CPU-only head node cannot open an engine: with --ray the driver takes the interface from the ONNX the
    manifest names and the hash from the manifest; only the GPU workers open the engine."""
    import shutil

    import elir_edge.restore.stage as stage

    folder = tmp_path / "engines"
    folder.mkdir()
    shutil.copy(tiny_quantized[0] / "model.onnx", folder / "model.onnx")
    (folder / "model.engine").write_bytes(b"an engine for a GPU this machine lacks")
    (folder / "model.engine.json").write_text(json.dumps({"builder": "tensorrt-rtx", "onnx": "model.onnx",
                                                          "engine_sha256": "ab" * 32}))
    monkeypatch.setattr(stage, "open_choice", lambda *a, **k: pytest.fail("the driver opened the engine"))
    seen = []
    monkeypatch.setattr(on_ray, "restore_on_ray", lambda ray, settings, plan, *a: seen.append((settings, plan))
                        or iter(()))
    stage.restore_images(folder / "model.engine", [photos], stage.RestoreOptions(output=tmp_path / "out", ray="local"),
                         False)
    ((settings, plan),) = seen
    assert settings.artifact_sha256 == "ab" * 32 and settings.task == "denoising"
    assert sum(s.images for s in plan) == 8


def test_blocks_hold_a_fixed_few_items_whatever_the_archive():
    from elir_edge.cluster.ray_data import BLOCK, blocks

    assert BLOCK <= 16
    for n in (40_000, 10_000_000):
        assert blocks(n, 2) == -(-n // BLOCK)  # not min(n, 1000): 10k images a block at 10M
    assert blocks(7, 2) == 2 and blocks(1, 4) == 1  # a small run still spreads over the actors


def test_an_error_of_one_item_on_a_worker_is_its_failed_row():
    from elir_edge.cluster.ray_data import batch_rows
    from elir_edge.restore.on_ray import failed_job

    def work(item):
        if item["index"] == 1:
            raise OSError(116, "Stale file handle")
        return {"index": item["index"], "status": "restored"}, b""

    batch = {"item": np.array([json.dumps({"index": i, "source": f"/in/{i}.png"}) for i in range(3)], dtype=object)}
    rows = [json.loads(r) for r in batch_rows(batch, work, failed_job)["row"]]
    assert [r["status"] for r in rows] == ["restored", "failed", "restored"]
    assert rows[1]["path"] == "/in/1.png" and "Stale file handle" in rows[1]["error"]


def test_a_run_that_stops_leaves_its_report_so_far_and_resume_takes_it(tiny_quantized, photos, tmp_path,
                                                                        monkeypatch):
    import elir_edge.restore.image as image

    real, report = image.ImageRestorer.__call__, tmp_path / "r.jsonl"

    def stops(self, job):
        if job.index == 3:
            raise KeyboardInterrupt
        return real(self, job)

    report.write_text('{"kind": "elir-edge restore report", "an earlier run": true}\n')  # stays until replaced
    before = report.read_bytes()
    monkeypatch.setattr(image.ImageRestorer, "__call__", stops)
    assert _restore(tiny_quantized[0], photos, tmp_path / "out", "--report", str(report)) == 130
    assert report.read_bytes() == before  # what existed before the stopped run is intact
    lines = [json.loads(line) for line in partial_path(report).read_text().splitlines()]
    assert lines[0]["kind"] == "elir-edge restore report" and lines[0]["complete"] is False
    assert [r["index"] for r in lines[1:]] == [0, 1, 2]  # every row done before the stop
    monkeypatch.setattr(image.ImageRestorer, "__call__", real)
    assert _restore(tiny_quantized[0], photos, tmp_path / "out", "--report", str(report), "--resume") == 0
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert lines[0]["skipped_existing"] == 2 and len(lines) == 1 + 8  # each input one row, broken.png failed again
    assert {Path(r["path"]).name for r in lines[1:] if r["status"] == "kept"} == {"p0.png", "p1.png"}
    assert not partial_path(report).exists()  # a run that ended leaves the whole report only


class Poison(on_ray.RestoreActor):
    """p4.png kills whichever worker reads it, every time; and the first actor to start raises (a node briefly
    short of memory, after it passed the check before the run)."""
    marker = ""

    def __init__(self, settings: dict):
        import ray

        if ray.get_runtime_context().get_actor_id() and not os.path.exists(self.marker):
            Path(self.marker).write_text("failed")
            raise MemoryError("could not allocate the runtime's arena")
        super().__init__(settings)

    def _one(self, item: dict):
        if Path(item["source"]).name == "p4.png":
            os._exit(1)
        return super()._one(item)


def test_a_poison_image_is_a_failed_row_and_an_actor_that_fails_to_start_is_replaced(fleet, tiny_quantized, photos,
                                                                                      tmp_path, monkeypatch):
    import logging

    import elir_edge.cluster.ray_data as ray_data

    Poison.marker = str(tmp_path / "failed")
    monkeypatch.setattr(on_ray, "RestoreActor", Poison)
    monkeypatch.setattr(ray_data, "RETRIES", 0)  # the policy's count, made small to keep the test short
    report = tmp_path / "r.jsonl"
    assert _restore(tiny_quantized[0], photos, tmp_path / "ray", "--ray", "--actors", "2", "--report", str(report)) == 0
    assert (tmp_path / "failed").exists()  # an actor did fail to start, and was replaced
    rows = [json.loads(line) for line in report.read_text().splitlines()[1:]]
    status = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == len(status) == 8  # each image once
    assert status["p4.png"]["status"] == "failed" and "died on every try (1)" in status["p4.png"]["error"]
    assert sorted(_pngs(tmp_path / "ray")) == [f"p{i}.png" for i in (0, 1, 2, 3, 5, 6)]
    starved = logging.getLogger("ray.data._internal.execution.resource_manager")  # Ray's "may hang forever"
    record = starved.makeRecord(starved.name, logging.WARNING, "", 0, "The job may hang forever", (), None)
    console = [h for h in logging.getLogger("ray.data").handlers if "HiddenRecordFilter" in map(
        lambda f: type(f).__name__, h.filters)]
    assert console and starved.isEnabledFor(logging.WARNING) and all(h.filter(record) for h in console)


class Slow(on_ray.RestoreActor):
    """A quarter of a second an image, so that a node can be removed while the run is going; each image done
    appends the node it ran on to `done` (a file the test reads)."""
    done = ""

    def _one(self, item: dict):
        import time

        import ray

        time.sleep(0.25)
        result = super()._one(item)
        with open(self.done, "a") as f:
            f.write(ray.get_runtime_context().get_node_id() + "\n")
        return result


@pytest.fixture
def tracebacks_not_kept():
    """pytest keeps every log record of a test, tracebacks included, until the test ends; Ray Data logs the lost
    block's error with its traceback, whose frames hold Ray Data's task and so the lost node's actor: kept alive,
    that actor restarts on the survivor and holds its only CPU, and the retry pass waits for it (the hang of one CI
    run, found by following the actor handle's referrers). A driver outside pytest keeps no records; here pytest's
    capture handlers keep the text of each traceback and drop the traceback object."""
    import logging

    from _pytest.logging import LogCaptureHandler

    class TextOnly(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info:
                record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            return True

    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    handlers = {h for lg in loggers for h in lg.handlers if isinstance(h, LogCaptureHandler)}
    text_only = TextOnly()
    for h in handlers:
        h.addFilter(text_only)
    yield
    for h in handlers:
        h.removeFilter(text_only)


def test_a_node_lost_mid_run_loses_nothing(fleet, tiny_quantized, photos, one_process, tmp_path, monkeypatch,
                                           tracebacks_not_kept):
    """Two worker nodes; the node of the worker that is restoring is removed (all its processes killed) once it
    has written two outputs: the other finishes, every output is there and identical to one process, and each
    image is one row. Ray Data's no-progress guard is cut to 5 minutes, so a hang fails here, not after 30."""
    import threading
    import time

    import ray

    export, out = tiny_quantized[0], tmp_path / "ray"
    monkeypatch.setattr(on_ray, "RestoreActor", Slow)
    monkeypatch.setattr(Slow, "done", str(tmp_path / "done.txt"))
    monkeypatch.setattr(ray.data.DataContext.get_current(), "execution_no_progress_timeout_s", 300)
    lost, finished = [], threading.Event()

    def remove_the_working_node():
        while not finished.is_set():
            done = Path(Slow.done).read_text().split() if Path(Slow.done).exists() else []
            if len(done) >= 2:
                lost.extend(n for n in fleet.worker_nodes if n.node_id == done[0])
                fleet.remove_node(lost[0], allow_graceful=False)
                return
            time.sleep(0.05)

    remover = threading.Thread(target=remove_the_working_node)
    remover.start()
    try:
        assert _restore(export, photos, out, "--ray", "--actors", "2", "--report", str(tmp_path / "r.jsonl")) == 0
    finally:
        finished.set()
        remover.join()
        fleet.add_node(num_cpus=1)
        fleet.wait_for_nodes()  # the lost node known dead, its stand-in alive: the cluster as the next test expects
    assert lost and lost[0] not in fleet.worker_nodes and len(one_process) == 7
    assert not _handles_of("Slow"), "the driver still holds a handle of the run's actors (a CPU held on the cluster)"
    assert _pngs(out) == one_process
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    assert sorted(r["index"] for r in rows) == list(range(8))
    no_temporaries(out)


def _handles_of(name: str) -> list:
    """The driver's live handles of the actors of `name`, after a full collection."""
    import gc

    from ray.actor import ActorHandle

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, ActorHandle)
            and f"({name})" in str(o._ray_actor_creation_function_descriptor)]


class CannotOpenOnOneNode(on_ray.RestoreActor):
    """On one node (by Ray node ID) the artifact cannot be opened, as with a broken runtime library there; the
    actors' rows say on which node they ran."""
    bad = ""

    def __init__(self, settings: dict):
        import ray

        if ray.get_runtime_context().get_node_id() == self.bad:
            raise OSError("libonnxruntime.so.1: cannot open shared object file")
        super().__init__(settings)

    def _one(self, item: dict):
        import ray

        row, blob = super()._one(item)
        return {**row, "node": ray.get_runtime_context().get_node_id()}, blob


def _worker_nodes() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU"))


def test_a_node_where_the_worker_cannot_start_is_left_out_in_one_line(fleet, tiny_quantized, photos, one_process,
                                                                      tmp_path, monkeypatch, capsys):
    """Every node starts a worker before any work; the node where that fails is left out with one line naming
    it and why, and the other node restores every image, the same bytes as one process. (Before the check,
    that node's actors died starting until the run stopped.)"""
    export = tiny_quantized[0]
    CannotOpenOnOneNode.bad = _worker_nodes()[0]
    monkeypatch.setattr(on_ray, "RestoreActor", CannotOpenOnOneNode)
    capsys.readouterr()
    assert _restore(export, photos, tmp_path / "ray", "--ray", "auto") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "left out" in line]
    assert len(said) == 1 and CannotOpenOnOneNode.bad[:8] in said[0], said
    assert "cannot start a worker (OSError: libonnxruntime.so.1: cannot open shared object file)" in said[0]
    assert _pngs(tmp_path / "ray") == one_process


def test_actors_run_only_on_the_nodes_that_passed_the_check(fleet, tiny_quantized, photos, tmp_path, monkeypatch):
    """Two actors asked for, one node left out: Ray's node-ID label keeps both off it (without it, one actor
    per node, and the left-out node's dies starting)."""
    import ray

    from elir_edge.cluster.ray_data import Work, check_nodes, map_actors
    from elir_edge.common.files import sha256_file
    from elir_edge.restore.image import resolve
    from elir_edge.restore.plan import plan_jobs
    from elir_edge.runtime.interface import onnx_interface

    model = tiny_quantized[0] / "model.onnx"
    CannotOpenOnOneNode.bad = _worker_nodes()[0]
    settings = resolve(model, sha256_file(model), onnx_interface(model), None, None, 16, 0, 1, "ort", 1)
    work = Work(CannotOpenOnOneNode, settings.__dict__, num_cpus=1)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.warns(UserWarning, match="left out of this run"):
        fleet_ = check_nodes(ray, work, [photos], out)
    assert fleet_.excluded == [CannotOpenOnOneNode.bad] and fleet_.actors(work) == 1
    jobs = [j.to_dict() for j in plan_jobs(sorted(photos.glob("p*.png")), out, False)]
    rows = [r for r, _ in map_actors(ray, jobs, work, fleet_, 2, on_ray.failed_job)]
    assert len(rows) == 7 and {r["status"] for r in rows} == {"restored"}
    assert {r["node"] for r in rows} == {_worker_nodes()[1]}


def test_a_worker_with_another_artifact_or_without_the_fid_weights_refuses(tiny_quantized, photos, tmp_path):
    """A node whose file is not the driver's (same path, other bytes) restores nothing: its PNGs would carry the
    driver's hash. A node without the Inception weights the driver scores FID with scores nothing: its rows
    would lack the features the driver's FID needs."""
    from dataclasses import asdict, replace

    from elir_edge.bench.artifacts import open_artifact
    from elir_edge.bench.on_ray import ScoreActor, actor_settings
    from elir_edge.bench.quality import ScoreSettings
    from elir_edge.bench.stage import BenchOptions
    from elir_edge.common.files import sha256_file
    from elir_edge.restore.image import resolve
    from elir_edge.runtime.interface import onnx_interface

    model = tiny_quantized[0] / "model.onnx"
    right = resolve(model, sha256_file(model), onnx_interface(model), None, None, 16, 0, 1, "ort", 1)
    assert on_ray.RestoreActor(asdict(right)).refused is None
    other = on_ray.RestoreActor(asdict(replace(right, artifact_sha256="0" * 64))).refused
    assert other.startswith("has another model.onnx than the driver's (sha256 ") and "000000000000..." in other
    opts = BenchOptions(engines=[model], threads=1)
    with open_artifact(model, opts, spin=False) as art:
        h, w = art.interface.size
        score = ScoreSettings("denoising", h, w, art.interface.latent_channels, 0)
        assert ScoreActor(actor_settings(opts, [art], art, score, None)).refused is None
        missing = actor_settings(opts, [art], art, score, tmp_path / "pt_inception.pth")
    refused = ScoreActor(missing).refused
    assert refused.startswith("FID: --fid-weights ") and "no such file" in refused and "on this Ray worker" in refused


STOPS = {  # what Ray raises out of the iteration past the policy, and the run's one line
    "actors dying as they start": (
        "ray.exceptions.RayError", "ray::MapWorker.__init__() (pid=1)\n  File ...\n"
        "MemoryError: could not allocate the runtime's arena",
        "the Ray run stopped (MemoryError: could not allocate the runtime's arena): fix that"),
    "no progress (Ray Data's guard, not a RayError)": (
        "ray.data.exceptions.ExecutionTimeoutError", "Dataset execution made no progress for at least 1800s of "
        "scheduling time (timeout: 1800s).\nOperators still running:\n  - MapBatches(RestoreActor): 0 active task(s)",
        "the Ray run stopped (Dataset execution made no progress for at least 1800s of scheduling time (timeout: "
        "1800s).): see `ray status` for workers that cannot start or nodes that left; fix that"),
}


@pytest.mark.parametrize("stop", STOPS)
def test_a_run_past_the_policy_stops_in_one_line(monkeypatch, stop):
    """Past the policy Ray raises out of the iteration: one line with the cause (at the bottom of a Ray error, the
    first line of Ray Data's guard), no traceback, and what to do."""
    import importlib

    import ray

    from elir_edge.cluster.ray_data import Fleet, Work, map_actors
    from elir_edge.errors import UserError

    where, message, said = STOPS[stop]
    module, _, name = where.rpartition(".")
    error = getattr(importlib.import_module(module), name)

    class Stopped:
        def map_batches(self, *a, **k):
            return self

        def iter_rows(self):
            raise error(message)
            yield

    monkeypatch.setattr(ray.data, "from_items", lambda *a, **k: Stopped())
    with pytest.raises(UserError) as e:
        list(map_actors(ray, [{"index": 0}], Work(on_ray.RestoreActor, {}), Fleet([], []), 1, on_ray.failed_job))
    assert str(e.value).startswith(said) and "--resume" in str(e.value) and "\n" not in str(e.value)
