"""Stage-by-stage progress on stderr, so long exports and calibrations show where they are."""

from __future__ import annotations

import sys
import time

from elir_edge.common.memory import peak_kb


class Stages:
    """Prints `[i/n] name ... 1.2 s` for each stage; quiet=True prints nothing."""

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet, self.stream = total, quiet, stream or sys.stderr
        self.index, self.started = 0, time.perf_counter()
        self.durations: list[tuple[str, float]] = []  # (stage, seconds) of the stages finished
        self.peak_stage: str | None = None  # the last finished stage in which this process's peak memory rose

    def __call__(self, name: str):
        return _Stage(self, name)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def new_line(stream) -> None:
    """Ends the header of the stage running now if it still waits for its time on the same line, so that a
    progress line printed inside the stage starts a line of its own; the stage then closes with `done in`."""
    stage = _Stage.waiting
    if stage is not None and stage.owner.stream is stream:
        print(file=stream, flush=True)
        stage.broken, _Stage.waiting = True, None


def progress_line(what: str, done: int, total: int | None, elapsed_s: float) -> str:
    """`    what: done/total (elapsed, ~left)`; without a known total, no estimate."""
    left = f", ~{elapsed_s / done * (total - done):.0f} s left" if total else ""
    return f"    {what}: {done}/{total or '?'} ({elapsed_s:.0f} s{left})"


def each(items, what: str, quiet: bool = False, stream=None, every_s: float = 10.0):
    """Items of a long loop inside a stage, with a line now and then: done/total, elapsed, estimate left."""
    stream = stream or sys.stderr
    items = list(items)
    start = last = time.perf_counter()
    if not quiet and items:
        new_line(stream)
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if not quiet and (now - last >= every_s or i == len(items)):
            last = now
            print(progress_line(what, i, len(items), now - start), file=stream, flush=True)


def bar(items, total: int, what: str, quiet: bool = False):
    """A bar over a whole run whose items arrive one by one (from this process or a cluster): done/total,
    images/s, elapsed and time left."""
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit="img", disable=quiet) as b:
        for item in items:
            b.update(1)
            yield item


class _Stage:
    waiting: _Stage | None = None  # the stage whose header line still waits for its time

    def __init__(self, owner: Stages, name: str):
        self.owner, self.name, self.broken = owner, name, False

    def __enter__(self):
        o = self.owner
        o.index += 1
        self.t0, self.peak0 = time.perf_counter(), peak_kb()
        if not o.quiet:
            print(f"[{o.index}/{o.total}] {self.name} ...", end="", file=o.stream, flush=True)
            _Stage.waiting = self
        return self

    def __exit__(self, exc_type, *_):
        stream = self.owner.stream
        took = time.perf_counter() - self.t0
        if _Stage.waiting is self:
            _Stage.waiting = None
        if exc_type is None:
            self.owner.durations.append((self.name, round(took, 2)))
            if self.peak0 is not None and peak_kb() > self.peak0:
                self.owner.peak_stage = self.name
        if self.owner.quiet:
            return False
        if exc_type is None:
            print(f"    done in {took:.1f} s" if self.broken else f" {took:.1f} s", file=stream, flush=True)
        elif self.broken:
            print("    failed", file=stream, flush=True)
        elif stream.isatty():
            print("\r\033[K", end="", file=stream, flush=True)  # the error message replaces the line
        else:
            print(" failed", file=stream, flush=True)
        return False
