"""`restore --workers N` in one process: N runners of the same file, each taking the next image when it is free.
ONNX Runtime releases the GIL while it runs, so N one-thread runners keep N cores busy where one N-thread
runner leaves them idle through each image's read, resize and PNG write (and its convolutions scale below N on
small images)."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

Job = TypeVar("Job")
Row = TypeVar("Row")


def side_by_side(workers: list[Callable[[Job], Row]], jobs: Iterable[Job]) -> Iterator[Row]:
    """Each job's result as it finishes (not in the jobs' order), each worker on one job at a time. An exception
    of a job is raised once the jobs already running have finished (their outputs whole); no job starts after it,
    nor after the caller stops reading."""
    todo, free = iter(jobs), list(workers)
    running: dict[Future, Callable[[Job], Row]] = {}
    with ThreadPoolExecutor(len(workers), thread_name_prefix="elir-edge-worker") as pool:
        while True:
            for worker, job in zip(list(free), todo):  # one job per free worker, while jobs last
                free.remove(worker)
                running[pool.submit(worker, job)] = worker
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                free.append(running.pop(future))
                yield future.result()
