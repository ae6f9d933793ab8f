"""`restore --workers`: jobs side by side in one process, each worker on one job at a time, nothing lost, nothing
started after a failure; the same bytes and rows as one worker."""

import json
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image

from elir_edge.cli import main
from elir_edge.restore.side_by_side import side_by_side


class Worker:
    """Records which jobs it ran, and fails the test if it is ever given a second job while one is running."""

    def __init__(self, seen: list, lock: threading.Lock, fail_on=None, delay=0.0):
        self.seen, self.lock, self.fail_on, self.delay, self.busy = seen, lock, fail_on, delay, False

    def __call__(self, job):
        assert not self.busy, "a worker was given a second job while running one"
        self.busy = True
        with self.lock:
            self.seen.append(("start", job))
        try:
            time.sleep(self.delay * (1 + job % 3))
            if job == self.fail_on:
                raise OSError(28, "No space left on device")
            return job * 10
        finally:
            with self.lock:
                self.seen.append(("end", job))
            self.busy = False


def _most_at_once(seen: list) -> int:
    now = most = 0
    for what, _ in seen:
        now += 1 if what == "start" else -1
        most = max(most, now)
    return most


def test_every_job_once_each_worker_one_at_a_time():
    seen, lock = [], threading.Lock()
    workers = [Worker(seen, lock, delay=0.01) for _ in range(3)]
    out = list(side_by_side(workers, range(20)))
    assert sorted(out) == [j * 10 for j in range(20)]
    assert sorted(j for what, j in seen if what == "start") == list(range(20))
    assert 2 <= _most_at_once(seen) <= 3  # side by side, never more than the workers


def test_a_failed_job_is_raised_after_the_running_ones_end_and_nothing_starts_after_it():
    seen, lock = [], threading.Lock()
    workers = [Worker(seen, lock, fail_on=0), Worker(seen, lock, delay=0.1)]
    rows = []
    with pytest.raises(OSError, match="No space left"):
        for row in side_by_side(workers, range(10)):
            rows.append(row)
    started = {j for what, j in seen if what == "start"}
    assert started == {0, 1}  # the job beside the failure ran; none was given out after it
    assert rows == [10]  # and its row came (its output is whole and counted) before the error


def test_a_caller_that_stops_reading_starts_nothing_more():
    seen, lock = [], threading.Lock()
    rows = side_by_side([Worker(seen, lock), Worker(seen, lock)], range(10))
    next(rows)
    rows.close()
    started = [j for what, j in seen if what == "start"]
    ended = [j for what, j in seen if what == "end"]
    assert len(started) <= 3 and sorted(started) == sorted(ended)


def _photos(folder):
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i, (h, w) in enumerate([(64, 64), (80, 48), (100, 130), (64, 64), (48, 96)]):
        img = np.kron(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3)), np.ones((8, 8, 1)))[:h, :w]
        Image.fromarray(img.astype(np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_two_workers_write_the_same_bytes_and_rows_as_one(tiny_quantized, tmp_path, capsys, monkeypatch):
    import elir_edge.restore.stage as stage

    photos, model = _photos(tmp_path / "in"), tiny_quantized[0] / "model.onnx"
    given = []
    monkeypatch.setattr(stage, "side_by_side",
                        lambda workers, jobs: given.append(workers) or side_by_side(workers, jobs))

    def restore(name, *extra):
        code = main(["restore", str(model), str(photos), "-o", str(tmp_path / name), "-q",
                     "--report", str(tmp_path / f"{name}.jsonl"), *extra])
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        return code, rows[0], sorted(rows[1:], key=lambda r: r["index"])

    (c1, head1, rows1), (c2, head2, rows2) = restore("one"), restore("two", "--workers", "2")
    assert c1 == c2 == 0
    assert head1["where"] == "this process" and head2["where"] == "this process, 2 workers"
    assert [(r["index"], r["status"]) for r in rows1] == [(r["index"], r["status"]) for r in rows2]
    assert [r["status"] for r in rows2].count("failed") == 1 and len(rows2) == 6
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").glob("*.png")}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").glob("*.png")}
    assert len(one) == 5 and one == two
    assert "2 workers" in capsys.readouterr().out
    (workers,) = given  # the two-worker run only, each worker with a runner of its own
    assert len(workers) == 2 and workers[0].runner is not workers[1].runner


def test_only_onnx_runtimes_cpu_runner_is_opened_side_by_side(tiny_quantized, tmp_path, capsys):
    """OpenVINO ran slower side by side (measured), an engine holds its GPU: refused in one line before anything is
    opened or written, whatever the number of images."""
    photos = _photos(tmp_path / "in")
    for artifact, extra, named in ((tiny_quantized[0] / "model.onnx", ["--runtime", "openvino"], "not OpenVINO"),
                                   (tmp_path / "model.engine", [], "not model.engine"),
                                   (tiny_quantized[0] / "model.onnx", ["--ray"], "with --ray, --actors")):
        code = main(["restore", str(artifact), str(photos / "p0.png"), "-o", str(tmp_path / "out"), "-q",
                     "--workers", "2", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "--workers runs " in err[0] and named in err[0], err
        assert not (tmp_path / "out").exists()


def test_no_more_workers_than_images(tiny_quantized, tmp_path, monkeypatch):
    """Runners cost memory and start-up: one image gets one runner (with every thread), whatever --workers says."""
    import elir_edge.restore.stage as stage

    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photos / "only.png")
    opened = []
    real = stage._runner_options
    monkeypatch.setattr(stage, "_runner_options", lambda opts, workers: opened.append(workers) or real(opts, workers))
    assert main(["restore", str(tiny_quantized[0] / "model.onnx"), str(photos), "-o", str(tmp_path / "out"), "-q",
                 "--workers", "3", "--report", str(tmp_path / "r.jsonl")]) == 0
    assert opened == [1] and real(stage.RestoreOptions(output=tmp_path), 1).threads is None
    assert json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])["where"] == "this process"


def test_side_by_side_threads_share_the_cores_this_process_may_use_not_the_machines(tmp_path, monkeypatch):
    """In a container given 4 of a machine's 16 cores (its cpuset), two workers run 2 threads each, not 8."""
    import os

    import elir_edge.restore.stage as stage
    from elir_edge.common.cores import usable_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6, 7}, raising=False)
    assert usable_cores() == 4
    assert stage._runner_options(stage.RestoreOptions(output=tmp_path), 2).threads == 2
    monkeypatch.delattr(os, "sched_getaffinity")  # a platform that cannot say: the machine's count
    assert usable_cores() == 16


def test_each_threads_warnings_are_its_own_notes_and_the_callers_reach_the_console():
    """Two jobs recording at once (a barrier makes them overlap): each list holds its own thread's warnings only;
    one raised meanwhile by the thread running them goes where warnings went before; all is put back after."""
    import warnings

    from elir_edge.common.notes import noted, routed

    shown, logs, both_in = [], {}, threading.Barrier(3)
    both_out = threading.Barrier(3)

    def job(name):
        with noted() as log:
            both_in.wait()
            warnings.warn(f"note of {name}")
            warnings.warn(f"note of {name}")  # each time, not once per place
            both_out.wait()
        logs[name] = [str(w.message) for w in log]

    before = warnings.showwarning
    warnings.showwarning = lambda message, *a, **k: shown.append(str(message))
    try:
        with routed():
            threads = [threading.Thread(target=job, args=(n,)) for n in "ab"]
            for t in threads:
                t.start()
            both_in.wait()
            warnings.warn("the run's own line")
            both_out.wait()
            for t in threads:
                t.join()
        warnings.warn("after the run")
    finally:
        warnings.showwarning = before
    assert logs == {"a": ["note of a"] * 2, "b": ["note of b"] * 2}
    assert shown == ["the run's own line", "after the run"]


def test_two_workers_print_every_warning_one_worker_prints(tiny_quantized, tmp_path, capsys):
    """Skipped files (said by the run) and animated images (each its own row's note) while two workers run."""
    photos = _photos(tmp_path / "in")
    frames = [Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)) for i in range(3)]
    for i in range(4):
        frames[0].save(photos / f"anim{i}.gif", save_all=True, append_images=frames[1:])
        (photos / f"broken{i}.png").write_bytes(b"not a png")
    said = {}
    for workers in ("1", "2"):
        assert main(["restore", str(tiny_quantized[0] / "model.onnx"), str(photos), "-o", str(tmp_path / workers),
                     "-q", "--workers", workers, "--report", str(tmp_path / f"{workers}.jsonl")]) == 0
        said[workers] = sorted(re.sub(r" at 0x[0-9a-f]+", "", line)  # PIL names its buffer's address
                               for line in capsys.readouterr().err.splitlines() if "warning" in line)
        rows = [json.loads(line) for line in (tmp_path / f"{workers}.jsonl").read_text().splitlines()[1:]]
        assert {r["path"].rsplit("/", 1)[1]: r["notes"] for r in rows if r.get("notes")} == \
            {f"anim{i}.gif": [f"{photos / f'anim{i}.gif'} has 3 frames: used the first"] for i in range(4)}
    assert len(said["1"]) == 9 and said["1"] == said["2"]  # 5 broken files skipped, 4 animated images noted


def test_reading_the_umask_from_threads_side_by_side_never_changes_it():
    """Each PNG's mode comes from the umask; read by setting it to 0 and back, two writers at once could read 0 and
    leave it 0 (every later output world-writable)."""
    import os
    import sys

    from elir_edge.common.files import _umask

    mask = os.umask(0o027)
    seen, switch = set(), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=lambda: seen.update(_umask() for _ in range(3000))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == {0o027} and os.umask(0o027) == 0o027
    finally:
        sys.setswitchinterval(switch)
        os.umask(mask)
