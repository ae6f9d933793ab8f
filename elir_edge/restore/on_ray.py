"""`restore --ray`: the plan's jobs as a Ray Data dataset, one ImageRestorer per actor. Each actor opens the
artifact once and checks that it is the driver's file (same sha256) and, on its own CPU, that its runtime
computes an int8 file right (nodes differ); the same start, tried on every node first, leaves out the nodes
where it fails."""

from __future__ import annotations

import functools
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterator

from elir_edge.cluster.ray_data import Sharded, Work, batch_rows, map_actors, nodes_for
from elir_edge.common.files import sha256_file
from elir_edge.restore.image import ImageRestorer, Settings
from elir_edge.restore.plan import Job, Shard, plan_shard


class RestoreActor:
    """A Ray Data actor: the artifact opened once, then one job per call."""

    def __init__(self, settings: dict):
        from elir_edge.runtime.open import RunnerOptions, open_runner
        from elir_edge.runtime.probe import wrong_here

        s = Settings(**settings)
        self.runner = open_runner(Path(s.artifact), RunnerOptions(runtime=s.runtime, threads=s.threads, spin=False))
        why = _another_file(s) or wrong_here([self.runner])
        self.refused = f"{why}, on this Ray worker" if why else None
        self.restore = ImageRestorer(s, self.runner)

    def _one(self, item: dict) -> tuple[dict, bytes]:
        return failed_job(item, self.refused) if self.refused else (self.restore(Job(**item)), b"")

    def __call__(self, batch: dict) -> dict:
        return batch_rows(batch, self._one, failed_job)


def _another_file(s: Settings) -> str | None:
    """Why this node's artifact is not the driver's (its outputs would carry the driver's hash), or None."""
    here = sha256_file(Path(s.artifact))
    return None if here == s.artifact_sha256 else (
        f"has another {Path(s.artifact).name} than the driver's (sha256 {here[:12]}..., the driver's "
        f"{s.artifact_sha256[:12]}...): put the same file on every node")


def failed_job(item: dict, error: str) -> tuple[dict, bytes]:
    """A job's row when its image was not restored, and why."""
    return {"index": item["index"], "path": item["source"], "output": None, "status": "failed", "error": error}, b""


def restore_on_ray(ray, settings: Settings, plan: list[Shard], compare: bool, inputs: list[Path], out_dir: Path,
                   actors: int | None, started_here: bool = False) -> Iterator[dict]:
    """Rows of the jobs as they finish on the cluster (each shard planned and each output written there), once
    every node has shown it sees the inputs, the artifact and the output folder: a Ray `started_here` that is
    this machine alone, on a CPU file (the driver opened and probed it), has been seen doing so by the driver."""
    threads = settings.threads or 1
    gpu = Path(settings.artifact).suffix not in (".onnx", ".safetensors")
    work = Work(RestoreActor, asdict(replace(settings, threads=threads)), num_cpus=0 if gpu else threads,
                num_gpus=1 if gpu else 0)
    fleet = nodes_for(ray, work, started_here, [*(Path(p).resolve() for p in inputs), Path(settings.artifact)], out_dir)
    items = Sharded([s.to_dict() for s in plan], functools.partial(_shard_items, compare), [s.images for s in plan])
    for row, _ in map_actors(ray, items, work, fleet, actors or fleet.actors(work), failed_job):
        yield row


def _shard_items(compare: bool, shard: dict) -> list[dict]:
    """One shard's jobs as plain values, planned where this runs."""
    return [j.to_dict() for j in plan_shard(Shard(**shard), compare)]
