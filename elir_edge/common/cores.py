"""The cores this process may run on: where elir-edge sizes a thread pool itself, it sizes it by this count."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPUs this process may use (its affinity: a container's cpuset, `taskset`, a pinned test worker), not
    the machine's count, which would oversubscribe them; the machine's count where affinity is unknown."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
