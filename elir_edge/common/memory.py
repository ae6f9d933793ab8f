"""This process's memory as the kernel counts it: for the reports, and for naming the stage that set the peak."""

from __future__ import annotations


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def resident_kb() -> int | None:
    """Resident memory now (KiB); None where /proc cannot tell."""
    return _status_kb("VmRSS")


def peak_kb() -> int | None:
    """This process's own peak resident memory so far (KiB); None where /proc cannot tell. Not getrusage's
    ru_maxrss: Linux carries a parent's peak into a child across exec, so a command started by a large process
    (a test worker, a notebook) would report the parent's."""
    return _status_kb("VmHWM")


def memory_gb() -> dict:
    """Resident memory now and at its peak so far, GB (NaN where /proc cannot tell), for a report."""
    return {"rss_gb": _gb(resident_kb()), "peak_rss_gb": _gb(peak_kb())}


def _gb(kib: int | None) -> float:
    return round(kib * 1024 / 1e9, 2) if kib is not None else float("nan")
