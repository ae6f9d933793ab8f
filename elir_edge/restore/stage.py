"""`elir-edge restore`: run an exported artifact on a user's images of any size, in this process or on a
Ray cluster (`--ray`), with the same plan, the same per-image code and the same report either way."""

from __future__ import annotations

import contextlib
import time
import warnings
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from elir_edge.common.cores import usable_cores
from elir_edge.common.files import ensure_writable_dir, sha256_file, sweep_temporaries
from elir_edge.common.notes import routed
from elir_edge.common.progress import bar
from elir_edge.common.rows import RESTORE_REPORT, check_rows_path, partial_path, streamed_rows, write_rows_of
from elir_edge.errors import UserError
from elir_edge.model.export_folder import FLOAT
from elir_edge.restore.image import ImageRestorer, Settings, resolve
from elir_edge.restore.plan import Shard, plan_shard, shards
from elir_edge.restore.side_by_side import side_by_side
from elir_edge.runtime.choose import open_choice
from elir_edge.runtime.engine_manifest import read_engine_manifest, source_onnx
from elir_edge.runtime.interface import onnx_interface
from elir_edge.runtime.open import ENGINE_SUFFIXES, RunnerOptions, open_runner
from elir_edge.runtime.probe import refuse_if_wrong

BURST_S = 0.005  # rows closer than this to the first one came with it


@dataclass
class RestoreOptions:
    output: Path
    task: str | None = None
    tile: int | None = None
    overlap: int = 32
    seed: int = 0
    batch: int = 1
    compare: bool = False
    threads: int | None = None
    runtime: str = "ort"  # for .onnx artifacts: ort or openvino
    resume: bool = False  # skip inputs whose output exists, is ours, and was made the same way
    report: Path | None = None  # JSON lines: one row per input
    ray: str | None = None  # None: this process; "local", "auto" or an address: a Ray cluster
    actors: int | None = None  # with ray: workers (default: the cluster's CPUs / threads, or its GPUs)
    workers: int = 1  # without ray: runners side by side in this process (ONNX Runtime CPU files), each `threads`


def restore_images(artifact: Path, inputs: list[Path], opts: RestoreOptions, progress: bool = True) -> dict:
    """Restore `inputs` with `artifact` (a file, or an export folder: its best CPU file computed right here)."""
    if opts.workers > 1:
        _refuse_side_by_side(Path(artifact), opts)
    if opts.ray is not None:
        from elir_edge.cluster.ray_data import precheck

        precheck(opts.ray)
    plan = shards(inputs, Path(opts.output))
    ensure_writable_dir(Path(opts.output))
    if opts.report is not None:  # and where its rows stream to while the run goes
        for path in (Path(opts.report), partial_path(Path(opts.report))):
            check_rows_path(path, RESTORE_REPORT, inputs)
    if opts.ray is not None and Path(artifact).suffix in ENGINE_SUFFIXES:
        return _run(_engine_settings(Path(artifact), opts), [], None, plan, inputs, opts, progress)
    workers = min(opts.workers, max(1, sum(s.images for s in plan)))  # no runner without an image to take
    run_opts = _runner_options(opts, workers)
    with open_choice(Path(artifact), lambda p: open_runner(p, run_opts), cpu_runtime=True) as choice:
        runner = choice.runner
        if choice.why is None:  # a file given; a folder's choice was already probed on this runtime
            refuse_if_wrong(runner, lambda p: open_runner(p, run_opts))
        _warn_if_int8_does_not_pay(runner)
        settings = resolve(runner.path, sha256_file(runner.path), runner.interface, opts.task, opts.tile,
                           opts.overlap, opts.seed, opts.batch, opts.runtime, run_opts.threads)
        if opts.ray is None:
            with _more_runners(runner, run_opts, workers - 1) as more:
                return _run(settings, [runner, *more], choice.why, plan, inputs, opts, progress)
    return _run(settings, [], choice.why, plan, inputs, opts, progress)  # the runner closed: workers open theirs


def _runner_options(opts: RestoreOptions, workers: int) -> RunnerOptions:
    """Side by side, the runners share the cores (threads: the cores / workers unless given) and sleep between
    runs rather than spin on cores another runner needs."""
    if workers == 1:
        return RunnerOptions(runtime=opts.runtime, threads=opts.threads)
    return RunnerOptions(runtime=opts.runtime, threads=opts.threads or max(1, usable_cores() // workers), spin=False)


def _refuse_side_by_side(artifact: Path, opts: RestoreOptions) -> None:
    """`--workers` runs ONNX Runtime CPU runners only, the one measured faster so (OpenVINO ran slower side by side on a
    2-core Zen 4: 4.6-4.8 against 7.5-7.9 img/s; an engine holds its GPU); said before anything is opened."""
    if opts.ray is not None:
        raise UserError("--workers runs images side by side in this process; with --ray, --actors and --threads "
                        "size the cluster's workers")
    if opts.runtime != "ort" or not (artifact.is_dir() or artifact.suffix == ".onnx"):
        on = "OpenVINO" if opts.runtime != "ort" else artifact.name
        raise UserError(f"--workers runs ONNX Runtime CPU files (.onnx, or an export folder) side by side, not {on}: "
                        "leave --workers out")


@contextlib.contextmanager
def _more_runners(runner, run_opts: RunnerOptions, n: int):
    """n more runners of `runner`'s file (ONNX Runtime on the CPU: `_refuse_side_by_side`), closed after the run."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(open_runner(runner.path, run_opts)) for _ in range(n)]


def _engine_settings(engine: Path, opts: RestoreOptions) -> Settings:
    """An engine's settings from its manifest and the ONNX it was built from: the driver (often a CPU-only head
    node) never opens the engine; each GPU worker does."""
    manifest = read_engine_manifest(engine)
    return resolve(engine, manifest.get("engine_sha256") or sha256_file(engine),
                   onnx_interface(source_onnx(engine, manifest)), opts.task, opts.tile, opts.overlap, opts.seed,
                   opts.batch, opts.runtime, opts.threads)


def _run(settings: Settings, runners: list, chosen: str | None, plan: list[Shard], inputs: list[Path],
         opts: RestoreOptions, progress: bool) -> dict:
    """Restore (with `runners` here, side by side, shard by shard as each is planned; on the cluster when none),
    report: each row appended to REPORT.partial as it arrives, so a run that stops leaves its rows so far; the
    whole report at the end, its rows in the order they finished (each carries its input's index)."""
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = replace(settings, resume=opts.resume)  # each worker keeps what is done, from the bytes it reads
    where = f"Ray cluster ({opts.ray})" if opts.ray is not None else \
        "this process" + (f", {len(runners)} workers" if len(runners) > 1 else "")
    total = sum(s.images for s in plan)
    started = time.perf_counter()
    with streamed_rows(opts.report, RESTORE_REPORT, {"artifact": settings.artifact, "inputs": total,
                                                     "where": where, "complete": False}) as add:
        if runners:
            jobs = (j for s in plan for j in plan_shard(s, opts.compare))
            restorers = [ImageRestorer(settings, r) for r in runners]
            if len(restorers) == 1:
                tally = _collect(map(restorers[0], jobs), total, progress, started, add)
            else:
                with routed():  # each image's warnings to its own row, the run's own lines to the console
                    tally = _collect(side_by_side(restorers, jobs), total, progress, started, add)
        else:
            tally = _on_cluster(settings, plan, inputs, opts, total, progress, started, add)
        result = {**_summary(settings, tally, time.perf_counter() - started, where), "chosen": chosen}
        if opts.report is not None:
            write_rows_of(Path(opts.report), RESTORE_REPORT, result, partial_path(Path(opts.report)))
    return result


def _on_cluster(settings: Settings, plan: list[Shard], inputs: list[Path], opts: RestoreOptions, total: int,
                progress: bool, started: float, add: Callable[[dict], None]) -> Tally:
    from elir_edge.cluster.ray_data import cluster, starts_here
    from elir_edge.restore.on_ray import restore_on_ray

    try:
        with cluster(opts.ray) as ray:
            rows = restore_on_ray(ray, settings, plan, opts.compare, inputs, Path(opts.output), opts.actors,
                                  starts_here(opts.ray))
            return _collect(rows, total, progress, started, add)
    finally:  # a worker killed mid-write leaves its temporary file: none may outlive the run
        for shard in plan:
            sweep_temporaries(Path(shard.out), ".png")


@dataclass
class Tally:
    """What the summary needs of a run's rows, without keeping them (a fleet's run has millions): the counts per
    status, and when each restored image came (8 bytes each)."""
    failed: int = 0
    kept: int = 0
    renamed: int = 0
    restored_at: array = field(default_factory=lambda: array("d"))

    @property
    def restored(self) -> int:
        return len(self.restored_at)

    @property
    def rows(self) -> int:
        return self.restored + self.failed + self.kept

    def add(self, row: dict) -> None:
        status = row["status"]
        self.failed += status == "failed"
        self.kept += status == "kept"
        if status == "restored":
            self.renamed += bool(row.get("moved"))
            self.restored_at.append(row["at_s"])


def _collect(rows: Iterator[dict], total: int, progress: bool, started: float,
             add: Callable[[dict], None]) -> Tally:
    """Every row through the run's progress bar (done/total, images/s, time left), stamped with when it arrived
    (`at_s`, seconds into the run) and given to `add` as it comes; notes re-raised as warnings; the tally back."""
    tally = Tally()
    for row in bar(rows, total, "restore", quiet=not progress):
        row["at_s"] = time.perf_counter() - started
        add(row)
        for note in row.get("notes", []):
            warnings.warn(f"{row['path']}: {note}", stacklevel=2)
        if row.get("moved"):
            warnings.warn(f"{row['moved']}: wrote {Path(row['output']).name} instead", stacklevel=2)
        if row["status"] == "failed":
            warnings.warn(f"skipped {row['path']}: {row['error']}", stacklevel=2)
        tally.add(row)
    return tally


def _summary(settings: Settings, tally: Tally, seconds: float, where: str) -> dict:
    return {"restored": tally.restored, "failed": tally.failed, "renamed": tally.renamed,
            "skipped_existing": tally.kept,
            "task": settings.task, "tile": settings.tile, "artifact": settings.artifact, "inputs": tally.rows,
            "seconds": seconds, "images_per_s": tally.restored / seconds if tally.restored and seconds > 0 else None,
            "steady_images_per_s": _steady(tally.restored_at),
            "where": where}


def _steady(at: array) -> float | None:
    """Images/s between the first result and the last (`at`: when each came, in order): the rate once every worker
    runs (start-up apart). On Ray the rows of a block arrive together: those of the first burst were made before
    it, so they do not count."""
    later = sum(a > at[0] + BURST_S for a in at) if at else 0
    return later / (at[-1] - at[0]) if later > 1 and at[-1] > at[0] else None


def _warn_if_int8_does_not_pay(runner) -> None:
    if runner.interface.int8_cpu_form and not runner.on_gpu:
        from elir_edge.runtime.cpu_roof import cpu_features

        if not cpu_features()["int8_dot_product"]:
            warnings.warn(f"this CPU has no int8 dot-product instruction (no VNNI/AMX): int8 convolutions gain "
                          f"little over fp32 on such CPUs, so {runner.path.parent / FLOAT} may be about as fast, "
                          "and exact (`elir-edge bench` measures both here)", stacklevel=3)
