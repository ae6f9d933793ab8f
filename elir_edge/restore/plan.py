"""What a restore run will do, decided once by whoever drives it: the inputs (path, size) and the output path
of each, from the file system's metadata alone. Workers carry the plan out: each hashes the input bytes it
reads anyway, and with `--resume` keeps an output stamped with that hash and the same settings. So every
output's name and bytes are the same whichever process or machine writes it, and the driver never reads
the archive's contents."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from elir_edge.common.images import SUFFIXES, png_text, tagged, written_by_us
from elir_edge.errors import UserError

STAMP = "elir-edge:restore"  # PNG text key: what made this output (input hash, artifact hash, settings)


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


def collect_inputs(inputs: list[Path]) -> list[Path]:
    files = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or folder: give image files or folders of images")
    if not files:
        raise UserError("no images found in the inputs: give image files or folders of images")
    return files


def plan_jobs(files: list[Path], out_dir: Path, compare: bool) -> list[Job]:
    names = OutputNames(out_dir, files)
    jobs = []
    for i, path in enumerate(files):
        target, moved = names.target(path, "")
        strip = str(names.target(path, "_compare")[0]) if compare else None
        jobs.append(Job(i, str(path.resolve()), path.stat().st_size, str(target), strip, moved))
    return jobs


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
