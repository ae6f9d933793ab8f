"""Per-image reports as JSON lines (restore --report, bench --report): a header line naming the kind of
report and the run, then one row per image. One writer, so both commands' files read the same way."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

from elir_edge.common.files import atomic_file, ensure_writable_dir, refuse_foreign
from elir_edge.errors import UserError

RESTORE_REPORT, BENCH_REPORT = "elir-edge restore report", "elir-edge bench report"


def is_rows_file(path: Path, kind: str) -> bool:
    try:
        with open(path) as f:
            return json.loads(f.readline()).get("kind") == kind
    except (OSError, ValueError, AttributeError):
        return False


def check_rows_path(path: Path, kind: str, inputs: list[Path]) -> None:
    """Before any work: a file name, not one of the inputs, writable, and not a user's own file."""
    if path.is_dir():
        raise UserError(f"--report {path} is a folder: give a file name")
    if path.resolve() in {Path(f).resolve() for f in inputs}:
        raise UserError(f"--report {path} is one of the inputs: choose another file")
    ensure_writable_dir(path.parent)
    refuse_foreign(path, lambda p: is_rows_file(p, kind), "--report")


def write_rows(path: Path, kind: str, header: dict, rows: list[dict]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in [{"kind": kind, **header}, *rows]))


def write_rows_of(path: Path, kind: str, header: dict, rows_file: Path) -> None:
    """The report: `header`, then the rows of `rows_file` (a .partial, after its own header line) copied as they
    are, line by line: a run of millions of images never holds its rows in memory."""
    with atomic_file(path) as tmp, open(rows_file) as rows, open(tmp, "w") as out:
        out.write(json.dumps({"kind": kind, **header}) + "\n")
        rows.readline()
        shutil.copyfileobj(rows, out)


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


@contextlib.contextmanager
def streamed_rows(path: Path | None, kind: str, header: dict) -> Iterator[Callable[[dict], None]]:
    """A function appending one row to `path`.partial (after a header line), flushed at once: a run that stops
    leaves its rows so far there, and the report a run before it wrote stays as it was. The .partial goes when
    the block ends without an error (by then the whole report is written). `path` None: rows go nowhere."""
    if path is None:
        yield lambda row: None
        return
    partial = partial_path(path)  # checked with the report itself, before any work (check_rows_path)
    with open(partial, "w") as f:
        def add(row: dict) -> None:
            f.write(json.dumps(row) + "\n")
            f.flush()
        add({"kind": kind, **header})
        yield add
    partial.unlink()
