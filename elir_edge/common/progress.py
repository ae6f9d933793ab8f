"""Stage-by-stage progress on stderr, so long exports and calibrations show where they are."""

from __future__ import annotations

import sys
import time


class Stages:
    """Prints `[i/n] name ... 1.2 s` for each stage; quiet=True prints nothing."""

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet, self.stream = total, quiet, stream or sys.stderr
        self.index, self.started = 0, time.perf_counter()
        self.durations: list[tuple[str, float]] = []  # (stage, seconds) of the stages finished

    def __call__(self, name: str):
        return _Stage(self, name)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def each(items, what: str, quiet: bool = False, stream=None, every_s: float = 10.0):
    """Items of a long loop inside a stage, with a line now and then: done/total, elapsed, estimate left."""
    stream = stream or sys.stderr
    items = list(items)
    start = last = time.perf_counter()
    if not quiet and items:
        print(file=stream, flush=True)
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if not quiet and (now - last >= every_s or i == len(items)):
            last = now
            print(f"    {what}: {i}/{len(items)} ({now - start:.0f} s, ~{(now - start) / i * (len(items) - i):.0f} s left)",
                  file=stream, flush=True)


class _Stage:
    def __init__(self, owner: Stages, name: str):
        self.owner, self.name = owner, name

    def __enter__(self):
        o = self.owner
        o.index += 1
        self.t0 = time.perf_counter()
        if not o.quiet:
            print(f"[{o.index}/{o.total}] {self.name} ...", end="", file=o.stream, flush=True)
        return self

    def __exit__(self, exc_type, *_):
        stream = self.owner.stream
        if exc_type is None:
            self.owner.durations.append((self.name, round(time.perf_counter() - self.t0, 2)))
        if self.owner.quiet:
            return False
        if exc_type is None:
            print(f" {time.perf_counter() - self.t0:.1f} s", file=stream, flush=True)
        elif stream.isatty():
            print("\r\033[K", end="", file=stream, flush=True)  # the error message replaces the line
        else:
            print(" failed", file=stream, flush=True)
        return False
