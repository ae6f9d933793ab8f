"""The mutation check: each bug of tests/mutants.py is planted in a fresh pytest run of the tests that
should catch it; the run must go red. The summary at the end of the suite lists every bug and the test
that caught it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(MUTANTS))
def test_planted_bug_turns_the_suite_red(name, record_property):
    what, _, tests = MUTANTS[name]
    env = {**os.environ, "ELIR_EDGE_MUTANT": name}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    failed = re.findall(r"^FAILED (\S+)", run.stdout, re.M)
    errors = re.findall(r"^E\s+(\w+Error)\b", run.stdout, re.M)
    assert not {"TypeError", "AttributeError", "NameError", "ImportError"} & set(errors), \
        f"the planted bug '{what}' broke the test run itself instead of being caught:\n{run.stdout[-1500:]}"
    record_property("mutation", (name, what, failed[0] if failed else ""))  # for the log's summary
    assert run.returncode == 1 and failed, f"planted bug '{what}' went unnoticed:\n{run.stdout[-2000:]}"
