"""What a restore run will do: the inputs (path, size) and the output path of each, from the file system's
metadata alone. The driver only walks the input trees for their folders' names (`shards`): each input folder's
tree is mirrored under the output folder, so output names can collide only within one output folder, and each
such folder (a shard) is listed and named on its own (`plan_shard`), here or in a Ray task beside the data.
Workers carry the plan out: each hashes the input bytes it reads anyway, and with `--resume` keeps an output
stamped with that hash and the same settings. So every output's name and bytes are the same whichever process
or machine writes it, and the driver never lists, stats or reads the archive's files."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from elir_edge.common.images import SUFFIXES, png_text, tagged, written_by_us
from elir_edge.errors import UserError

STAMP = "elir-edge:restore"  # PNG text key: what made this output (input hash, artifact hash, settings)
SHARD_SPAN = 1 << 32  # a job's index: its shard's index * SHARD_SPAN + its place in the shard


@dataclass(frozen=True)
class Job:
    """One input image and where its outputs go."""
    index: int
    source: str
    size: int
    target: str
    compare: str | None = None
    moved: str | None = None  # why the plain `<stem>.png` name was not free

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Shard:
    """One output folder and the inputs whose outputs go there: the images directly inside `folders` (listed
    when the shard is planned) and the `files` named on the command line."""
    index: int
    out: str
    folders: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    images: int = 0  # image-named entries the walk saw: the progress bar's total (the plan has the truth)

    def to_dict(self) -> dict:
        return asdict(self)


def shards(inputs: list[Path], out_dir: Path) -> list[Shard]:
    """The driver's whole share of the planning: input folders walked for their folders' names (no file is
    stat'ed or read), each tree mirrored under `out_dir` (the trees of several input folders merge there), files
    named one by one going to `out_dir` itself. An output folder inside an input tree is not walked."""
    groups: dict[str, dict] = {}
    own = Path(out_dir).resolve()
    for p in map(Path, inputs):
        if p.is_file():
            g = groups.setdefault(".", {"folders": [], "files": [], "images": 0})
            g["files"].append(str(p))
            g["images"] += 1
        elif not p.is_dir():
            raise UserError(f"{p}: no such file or folder: give image files or folders of images")
        for top, dirs, names in os.walk(p, onerror=_unlisted) if p.is_dir() else ():
            dirs[:] = sorted(d for d in dirs if Path(top, d).resolve() != own)
            g = groups.setdefault(os.path.relpath(top, p), {"folders": [], "files": [], "images": 0})
            g["folders"].append(top)
            g["images"] += sum(Path(n).suffix.lower() in SUFFIXES for n in names)
    found = [(rel, g) for rel, g in groups.items() if g["images"]]  # folders of folders make no shard
    if not found:
        raise UserError("no images found in the inputs: give image files or folders of images")
    return [Shard(i, os.path.normpath(os.path.join(out_dir, rel)), tuple(g["folders"]), tuple(g["files"]),
                  g["images"]) for i, (rel, g) in enumerate(found)]


def _unlisted(e: OSError) -> None:
    warnings.warn(f"{e.filename}: cannot list it ({e.strerror}): its images are left out", stacklevel=2)


def plan_shard(shard: Shard, compare: bool) -> list[Job]:
    """The jobs of one shard: its files as given, then each folder's images sorted by name, each named in the
    shard's output folder (the one place its names can collide)."""
    files = [Path(f) for f in shard.files]
    for folder in map(Path, shard.folders):
        try:
            files += sorted(f for f in folder.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
        except OSError as e:
            raise UserError(f"{folder}: cannot list it ({e.strerror}): check it is readable here") from None
    names = OutputNames(Path(shard.out), files)
    jobs = []
    for k, path in enumerate(files):
        target, moved = names.target(path, "")
        strip = str(names.target(path, "_compare")[0]) if compare else None
        jobs.append(Job(shard.index * SHARD_SPAN + k, str(path.resolve()), path.stat().st_size, str(target), strip,
                        moved))
    return jobs


def plan_jobs(inputs: list[Path], out_dir: Path, compare: bool) -> list[Job]:
    """The whole plan at once, on this machine: every shard's jobs (the planning benchmark's measure)."""
    return [j for s in shards(inputs, out_dir) for j in plan_shard(s, compare)]


def stamp(input_sha256: str, settings: dict) -> str:
    """The PNG text an output carries: enough to tell, on a later `--resume`, that it is the result of the input
    with this content hash through this artifact with these settings."""
    return json.dumps({"input_sha256": input_sha256, **settings}, sort_keys=True)


def already_done(job: Job, input_sha256: str, settings: dict) -> bool:
    """`--resume`: the output exists, elir-edge wrote it, and it is this input's result with these settings."""
    text = png_text(Path(job.target))  # one read of the output: its tag and its stamp
    return tagged(text) and text.get(STAMP) == stamp(input_sha256, settings) and \
        (not job.compare or written_by_us(Path(job.compare)))


class OutputNames:
    """Where each restored image goes: `<stem><suffix>.png` in the output folder, unless that path is one of
    the inputs, was already written in this run, or holds a file elir-edge did not write; then the first
    free `<stem><suffix>.restored[-N].png`. Inputs and a user's own files are never replaced."""

    def __init__(self, folder: Path, inputs: list[Path]):
        self.folder, self.inputs, self.taken = folder, {p.resolve() for p in inputs}, set()

    def _blocked(self, p: Path, real: Path) -> str | None:
        """Why `p` (whose resolved path is `real`: one look-up of the file system per candidate) is not free."""
        if real in self.inputs:
            return f"{p} is one of the inputs"
        if real in self.taken:
            return f"{p} was already written by this run (two inputs share the name {p.stem})"
        if p.exists() and not written_by_us(p):
            return f"{p} exists and was not written by elir-edge"
        return None

    def target(self, source: Path, suffix: str) -> tuple[Path, str | None]:
        p, n = self.folder / f"{source.stem}{suffix}.png", 0
        real = p.resolve()
        why = blocked = self._blocked(p, real)
        while blocked:
            n += 1
            p = self.folder / f"{source.stem}{suffix}.restored{'' if n == 1 else f'-{n}'}.png"
            real = p.resolve()
            blocked = self._blocked(p, real)
        self.taken.add(real)
        return p, why
