"""Warnings raised while one job runs, as that job's notes, also when jobs run in threads side by side.
`warnings.catch_warnings` swaps process-wide state (the filters and `showwarning`): two threads using it at once
put back each other's recorder, and later warnings (the run's own "skipped ..." lines) vanish into it. Under
`routed()`, entered once by the thread that runs the jobs side by side, each job's thread only names its own list."""

from __future__ import annotations

import contextlib
import threading
import warnings

_LOCAL = threading.local()
_ROUTED = threading.Event()


@contextlib.contextmanager
def routed():
    """For the whole of a run whose jobs record notes in threads: every warning shown each time, sent to the list
    of the job running in its thread, or where warnings went before (the caller's, for its own lines)."""
    before = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        log = getattr(_LOCAL, "log", None)
        if log is None:
            before(message, category, filename, lineno, file, line)
        else:
            log.append(warnings.WarningMessage(message, category, filename, lineno, file, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        _ROUTED.set()
        try:
            yield
        finally:
            _ROUTED.clear()


@contextlib.contextmanager
def noted():
    """The warnings raised in this thread while inside (each time, not once per place), as a list."""
    if not _ROUTED.is_set():
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always")
            yield log
        return
    _LOCAL.log = log = []
    try:
        yield log
    finally:
        _LOCAL.log = None
