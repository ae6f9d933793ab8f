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
    """Each job's result as it finishes (not in the jobs' order), each worker on one job at a time. A job's exception
    starts no job more: the jobs already running finish, their results come, then the first exception is raised.
    A caller that stops reading starts no job more either (the running ones finish)."""
    todo, free = iter(jobs), list(workers)
    running: dict[Future, Callable[[Job], Row]] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(len(workers), thread_name_prefix="elir-edge-worker") as pool:
        while True:
            for worker, job in zip(list(free) if failure is None else [], todo):  # a job per free worker
                free.remove(worker)
                running[pool.submit(worker, job)] = worker
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                free.append(running.pop(future))
                if future.exception() is None:
                    yield future.result()
                else:
                    failure = failure or future.exception()
    if failure is not None:
        raise failure
