"""One image through an opened runner: read, (upscale,) resize or tile, run, write. The same code runs in
the `restore` process and in each Ray worker, so their outputs are the same bytes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from elir_edge.common.images import UNREADABLE, read_rgb, save_png, to_chw, to_uint8
from elir_edge.common.notes import noted
from elir_edge.errors import UserError
from elir_edge.model.settings import SIZE_MULTIPLE
from elir_edge.restore.plan import STAMP, Job, already_done, stamp
from elir_edge.restore.strip import write_strip
from elir_edge.restore.tiling import restore_tiled, restore_whole
from elir_edge.runtime.runner import Interface, Runner

UPSCALE = {"sr": 8, "bsr": 4}  # super-resolution inputs are bicubic-upscaled first, as the reference does


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the job: plain values, so they travel to other processes."""
    artifact: str
    artifact_sha256: str
    task: str
    tile: int | None
    overlap: int
    seed: int
    batch: int
    runtime: str
    threads: int | None
    resume: bool = False  # keep an output stamped with this input's hash and these settings

    def stamped(self) -> dict:
        """What decides an output's bytes (not where it was computed, nor with how many threads)."""
        d = asdict(self)
        return {k: d[k] for k in ("artifact_sha256", "task", "tile", "overlap", "seed", "batch", "runtime")}


def resolve(artifact: Path, artifact_sha256: str, interface: Interface, task: str | None, tile: int | None,
            overlap: int, seed: int, batch: int, runtime: str, threads: int | None) -> Settings:
    """The run's settings, checked against the graph before any image is read."""
    task = task or interface.task
    if task is None:
        raise UserError(f"{artifact} carries no task metadata (not made by elir-edge): pass --task")
    gh, gw = interface.height, interface.width
    tile = tile or (gh if task == "bsr" else None)
    if tile is not None:
        if gh is not None and (tile != gh or tile != gw):
            raise UserError(f"--tile {tile} differs from the graph's fixed input {gh}x{gw}: use --tile {gh}, "
                            "or export with --dynamic")
        if tile % SIZE_MULTIPLE or not 0 <= overlap < tile:
            raise UserError(f"--tile {tile} --overlap {overlap}: the tile must be a multiple of {SIZE_MULTIPLE} and "
                            "the overlap smaller than the tile")
    return Settings(str(artifact), artifact_sha256, task, tile, overlap, seed, batch, runtime, threads)


class ImageRestorer:
    """Restores one job at a time with `runner`; a row per job, failures included, never an exception for a
    bad image (a write that fails is the machine's fault: it is raised)."""

    def __init__(self, settings: Settings, runner: Runner):
        self.s, self.runner = settings, runner

    def __call__(self, job: Job) -> dict:
        """The input is read once: its bytes are hashed (the output's stamp, the `--resume` check) and decoded."""
        row = {"index": job.index, "path": job.source, "output": job.target, "moved": job.moved}
        t0 = time.perf_counter()
        with noted() as caught:  # this thread's warnings only: jobs may run side by side (`--workers`)
            try:
                data = Path(job.source).read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if self.s.resume and already_done(job, digest, self.s.stamped()):
                    return {**row, "status": "kept"}
                img = read_rgb(Path(job.source), data)
            except (*UNREADABLE, FileNotFoundError) as e:
                return {**row, "status": "failed", "output": None,
                        "error": f"not a readable image ({type(e).__name__}: {str(e)[:80]})"}
            self._write(job, img, digest)  # a full disk stops a run here (one line); on Ray, batch_rows makes it a row
        return {**row, "status": "restored", "ms": (time.perf_counter() - t0) * 1000,
                "notes": [str(w.message) for w in caught]}

    def _write(self, job: Job, img: np.ndarray, input_sha256: str) -> None:
        s, interface = self.s, self.runner.interface
        if s.task in UPSCALE:
            f = UPSCALE[s.task]
            img = np.asarray(Image.fromarray(img).resize((img.shape[1] * f, img.shape[0] * f), Image.BICUBIC))
        if s.tile is None:
            gh, gw = interface.height, interface.width
            size = (gw or img.shape[1] // 32 * 32 or 32, gh or img.shape[0] // 32 * 32 or 32)
            img = np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))
            out = restore_whole(to_chw(img), self.runner, interface.latent_channels, s.seed)
        else:
            out = restore_tiled(to_chw(img), self.runner, s.tile, s.overlap, interface.latent_channels, s.seed,
                                s.batch)
        result = to_uint8(out)
        save_png(result, Path(job.target), {STAMP: stamp(input_sha256, s.stamped())})
        if job.compare:
            write_strip({"input": [img], "restored": [result]}, Path(job.compare))
