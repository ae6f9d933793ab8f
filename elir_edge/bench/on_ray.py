"""`bench --ray`: the quality pass's images as a Ray Data dataset; each actor opens every artifact and the
float reference once and scores one image per call. Rows (and Inception features) come back to the driver,
which aggregates them as it does for one process. Speed is not measured here: it stays on one device."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from elir_edge.bench.artifacts import artifact_runtimes, open_artifact
from elir_edge.bench.options import BenchOptions
from elir_edge.bench.quality import ImageScorer, ScoreSettings, failed_row
from elir_edge.cluster.ray_data import Work, batch_rows, cluster, map_actors, nodes_for, starts_here
from elir_edge.runtime.runner import Runner


class ScoreActor:
    """A Ray Data actor: the artifacts, the reference and the Inception network opened once. Each int8 file
    is probed again on the worker's own CPU (nodes differ): a worker whose runtime computes one wrongly, or
    that cannot load the Inception weights the driver scores FID with, scores nothing (and the same start,
    tried on every node first, leaves out the nodes where it fails)."""

    def __init__(self, settings: dict):
        from elir_edge.bench.fid import inception
        from elir_edge.runtime.probe import wrong_here

        opts = BenchOptions(engines=[], threads=settings["threads"], provider=settings["provider"],
                            device=settings["device"], half=settings["half"])
        arts = [open_artifact(Path(p), opts, rt, spin=False) for p, rt in settings["arts"]]
        ref = settings["ref"]
        ref = arts[ref] if isinstance(ref, int) else open_artifact(Path(ref), opts, spin=False)
        weights = settings["fid_weights"]
        net, unavailable = inception(Path(weights)) if weights else (None, None)
        why = wrong_here(arts) or (f"FID: {unavailable['reason']}" if unavailable else None)
        self.refused = f"{why}, on this Ray worker" if why else None
        self.score = ImageScorer(arts, ref, ScoreSettings(**settings["score"]), net)

    def _one(self, item: dict) -> tuple[dict, bytes]:
        return failed_row(item, self.refused) if self.refused else self.score(item)

    def __call__(self, batch: dict) -> dict:
        return batch_rows(batch, self._one, failed_row)


def actor_settings(opts: BenchOptions, arts: list[Runner], ref: Runner, settings: ScoreSettings,
                   fid_weights: Path | None) -> dict:
    """What each actor needs to open the same artifacts and score the same way (plain values for Ray);
    `fid_weights`: the Inception weights the driver found (its --fid-weights or its cache), or None: no FID."""
    ref_at = next((i for i, a in enumerate(arts) if a is ref), str(ref.path))
    return {"arts": [(str(p), rt) for p, rt in artifact_runtimes(opts)], "ref": ref_at, "threads": opts.threads or 1,
            "provider": opts.provider, "device": opts.device, "half": opts.half,
            "fid_weights": str(fid_weights) if fid_weights else None, "score": asdict(settings)}


def score_on_ray(opts: BenchOptions, arts: list[Runner], ref: Runner, todo: list[dict], settings: ScoreSettings,
                 fid_weights: Path | None) -> Iterator[tuple[dict, bytes]]:
    """(row, features) of every image, in the order the cluster finishes them, on the nodes that can score."""
    threads = opts.threads or 1
    gpu = any(a.on_gpu for a in arts)
    work = Work(ScoreActor, actor_settings(opts, arts, ref, settings, fid_weights), num_cpus=0 if gpu else threads,
                num_gpus=1 if gpu else 0)
    with cluster(opts.ray) as ray:
        folders = {Path(p).parent for i in todo for p in (i["path"], i["gt"]) if p}
        reads = [*sorted(folders), *(a.path for a in arts), *([fid_weights] if fid_weights else [])]
        fleet = nodes_for(ray, work, starts_here(opts.ray), reads)
        yield from map_actors(ray, todo, work, fleet, opts.actors or fleet.actors(work), failed_row)
