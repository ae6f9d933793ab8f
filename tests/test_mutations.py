"""The mutation check: each bug of tests/mutants.py is planted in a fresh pytest run of the tests that
should catch it (a fork of tests/planter.py); the run must go red. The summary at the end of the suite lists
every bug and the test that caught it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mutants import MUTANTS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@pytest.fixture(scope="module")
def planter():
    proc = subprocess.Popen([sys.executable, str(HERE / "planter.py")], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.parametrize("name", list(MUTANTS))
def test_planted_bug_turns_the_suite_red(name, planter, tmp_path, record_property):
    what, _, tests = MUTANTS[name]
    log = tmp_path / "run.log"
    planter.stdin.write(json.dumps([name, str(log), *tests]) + "\n")
    planter.stdin.flush()
    code, stdout = int(planter.stdout.readline()), log.read_text()
    failed = re.findall(r"^FAILED (\S+)", stdout, re.M)
    errors = re.findall(r"^E\s+(\w+Error)\b", stdout, re.M)
    assert not {"TypeError", "AttributeError", "NameError", "ImportError"} & set(errors), \
        f"the planted bug '{what}' broke the test run itself instead of being caught:\n{stdout[-1500:]}"
    record_property("mutation", (name, what, failed[0] if failed else ""))  # for the log's summary
    assert code == 1 and failed, f"planted bug '{what}' went unnoticed (exit {code}):\n{stdout[-2000:]}"
