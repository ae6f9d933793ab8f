"""Past one machine (`--ray`): the same outputs as one process, byte for byte; a worker that dies mid-run
loses nothing; `--resume` keeps what is done; a cluster that cannot be reached or used is one line.

One local Ray (2 CPUs) serves the whole module; each test's work is a handful of 64 px images."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import no_temporaries
from test_bench import random_inception  # noqa: F401  (a fixture)
from PIL import Image

import elir_edge.restore.on_ray as on_ray
from elir_edge.cli import main


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's own actors travel by value
    yield ray
    ray.shutdown()


@pytest.fixture
def photos(tmp_path):
    """Seven images of assorted sizes and one file that is not an image."""
    rng = np.random.default_rng(3)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(64, 64), (80, 48), (100, 130), (64, 64), (48, 96), (72, 72), (64, 90)]):
        img = np.kron(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))[:h, :w]
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _restore(export: Path, photos: Path, out: Path, *extra: str) -> int:
    return main(["restore", str(export / "model.onnx"), str(photos), "-o", str(out), "-q", "--threads", "1", *extra])


def test_ray_writes_the_same_bytes_as_one_process(ray_local, tiny_quantized, photos, tmp_path, capsys):
    export = tiny_quantized[0]
    assert _restore(export, photos, tmp_path / "one", "--report", str(tmp_path / "one.jsonl")) == 0
    assert _restore(export, photos, tmp_path / "ray", "--ray", "--actors", "2",
                    "--report", str(tmp_path / "ray.jsonl")) == 0
    one, ray = _pngs(tmp_path / "one"), _pngs(tmp_path / "ray")
    assert len(one) == 7 and one == ray  # 7 images, the unreadable file a row, not a crash
    rows = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert rows[0]["where"].startswith("Ray cluster") and rows[0]["inputs"] == 8
    status = {Path(r["path"]).name: r["status"] for r in rows[1:]}
    assert status.pop("broken.png") == "failed" and set(status.values()) == {"restored"} and len(status) == 7
    assert "skipped" in capsys.readouterr().err


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


def test_a_worker_killed_mid_run_loses_nothing(ray_local, tiny_quantized, photos, tmp_path, monkeypatch):
    export = tiny_quantized[0]
    assert _restore(export, photos, tmp_path / "one") == 0
    DiesOnce.marker = str(tmp_path / "died")
    monkeypatch.setattr(on_ray, "RestoreActor", DiesOnce)
    assert _restore(export, photos, tmp_path / "ray", "--ray", "--actors", "2") == 0
    assert (tmp_path / "died").exists()  # the fault did happen
    assert _pngs(tmp_path / "ray") == _pngs(tmp_path / "one")
    no_temporaries(tmp_path / "ray")


def test_resume_keeps_what_is_done_and_redoes_the_rest(ray_local, tiny_quantized, photos, tmp_path, capsys):
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
        score = actor_settings(opts, [art], art, ScoreSettings("denoising", h, w, art.interface.latent_channels, 0))
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


def test_bench_quality_through_ray_equals_one_process(ray_local, tiny_quantized, photos, random_inception, tmp_path):
    """Per-image rows computed on two workers and aggregated on the driver: every figure equal to one process's,
    FID/KID (float64 sums of the same features, KID subsets from the same seed) included."""
    from elir_edge.bench.stage import BenchOptions, run_bench

    export, data = tiny_quantized[0], tmp_path / "data"
    data.mkdir()
    for name in ("p0.png", "p2.png", "p4.png", "broken.png"):
        (data / name).write_bytes((photos / name).read_bytes())

    def bench(**ray):
        return run_bench(BenchOptions(engines=[export / "model_int8.onnx"], data=data,
                                      threads=1, iterations=2, duration=0, warmup=0, cpu_roof=False,
                                      fid_weights=random_inception, progress=False, **ray))

    one, fleet = bench(), bench(ray="local", actors=2, report=tmp_path / "rows.jsonl")
    assert fleet["quality"]["where"].startswith("Ray") and one["quality"]["where"] == "this process"
    from elir_edge.bench.report import bench_tables

    assert "quality pass on the Ray cluster (local)" in bench_tables(fleet)
    assert "1 image(s) not scored, not counted (e.g. " in bench_tables(one)
    assert "1 x not a readable image (UnidentifiedImageError)" in bench_tables(one)
    assert "over the cluster" not in bench_tables(one)
    for key in ("images", "failed", "failures", "noise_floor_vs_float", "degraded_vs_gt"):
        assert fleet["quality"][key] == one["quality"][key], key
    assert one["quality"]["images"] == 3 and len(one["quality"]["failed"]) == 1
    (a,), (b,) = one["rows"], fleet["rows"]
    for key in ("vs_gt", "vs_float", "fid_kid_vs_gt", "fid_kid_vs_float"):
        assert a[key] == b[key], key
    assert a["fid_kid_vs_gt"]["available"] and a["vs_float"]["psnr"]["n"] == 3
    rows = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(rows) == 1 + 4 and json.loads(rows[0])["kind"] == "elir-edge bench report"
