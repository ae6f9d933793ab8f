"""The mutation check's runner (tests/test_mutations.py): it imports what every planted run needs once, then
runs each run in a fork of itself, so a run costs its tests, not ~4 s of Python starting and importing torch.

Reads one JSON request a line from stdin: [mutant, log path, test ids...]; answers the run's exit code a line.
A fork is as fresh as a new process for what the mutants patch: they patch at pytest_configure, in the child.
"""

from __future__ import annotations

import json
import os
import signal
import sys

# what every run imports (conftest's and mutants' imports), imported once here for every fork; conftest itself is
# left to pytest, which rewrites its asserts
import hypothesis  # noqa: F401
import onnx  # noqa: F401
import onnxruntime  # noqa: F401
import pytest
import torch  # noqa: F401

import elir_edge.exporter.stage  # noqa: F401
import elir_edge.quantize.stage  # noqa: F401

TIMEOUT_S = 900


def run(mutant: str, log: str, tests: list[str]) -> None:
    """In the forked child: the planted run, its output to `log`; never returns."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["ELIR_EDGE_MUTANT"] = mutant
    signal.alarm(TIMEOUT_S)  # a run that hangs ends as SIGALRM, which the check reports
    # hypothesis's plugin is imported already (above), so pytest cannot rewrite its asserts, and says so
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", *quiet, *tests])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def main() -> None:
    for line in sys.stdin:
        mutant, log, *tests = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run(mutant, log, tests)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main()
