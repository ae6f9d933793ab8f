"""`restore --ray`: the plan's jobs as a Ray Data dataset, one ImageRestorer per actor. Each actor opens the
artifact once and checks, on its own CPU, that its runtime computes an int8 file right (nodes differ)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

from elir_edge.cluster.ray_data import batch_rows, check_reach, default_actors, map_actors
from elir_edge.restore.image import ImageRestorer, Settings
from elir_edge.restore.plan import Job


class RestoreActor:
    """A Ray Data actor: the artifact opened once, then one job per call."""

    def __init__(self, settings: dict):
        from elir_edge.runtime.open import RunnerOptions, open_runner
        from elir_edge.runtime.probe import WHY, probe_runner

        s = Settings(**settings)
        self.runner = open_runner(Path(s.artifact), RunnerOptions(runtime=s.runtime, threads=s.threads, spin=False))
        probed = probe_runner(self.runner)
        self.refused = f"{probed.describe()} ({WHY}) on this worker" if probed is not None and not probed.ok else None
        self.restore = ImageRestorer(s, self.runner)

    def _one(self, item: dict) -> tuple[dict, bytes]:
        return failed_job(item, self.refused) if self.refused else (self.restore(Job(**item)), b"")

    def __call__(self, batch: dict) -> dict:
        return batch_rows(batch, self._one, failed_job)


def failed_job(item: dict, error: str) -> tuple[dict, bytes]:
    """A job's row when its image was not restored, and why."""
    return {"index": item["index"], "path": item["source"], "output": None, "status": "failed", "error": error}, b""


def restore_on_ray(ray, settings: Settings, jobs: list[Job], inputs: list[Path], out_dir: Path,
                   actors: int | None) -> Iterator[dict]:
    """Rows of the jobs as they finish on the cluster (each output written by the worker that ran it), once
    every node has shown it sees the inputs, the artifact and the output folder."""
    check_reach(ray, [*(Path(p).resolve() for p in inputs), Path(settings.artifact)], out_dir)
    threads = settings.threads or 1
    gpu = Path(settings.artifact).suffix not in (".onnx", ".safetensors")
    actors = actors or default_actors(ray, gpu, threads)
    settings = replace(settings, threads=threads)
    for row, _ in map_actors(ray, [j.to_dict() for j in jobs], RestoreActor, asdict(settings), actors, failed_job,
                             num_cpus=0 if gpu else threads, num_gpus=1 if gpu else 0):
        yield row
