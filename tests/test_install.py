"""The install cannot rot: every dependency has a tested range in pyproject.toml, the lock CI installs pins
versions inside those ranges, and what is installed here (from the lock or not) lies inside them."""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return reqs + [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]


def _lock() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    return {canonicalize_name(name): v for name, v in pins}


def test_every_dependency_has_a_bounded_range():
    for r in _requirements():
        ops = {s.operator for s in r.specifier}
        assert "==" in ops or {">=", "<"} <= ops, f"{r}: give it a tested range (>=tested,<next) or a pin"


def test_the_lock_pins_every_dependency_inside_its_range():
    lock = _lock()
    for r in _requirements():
        name = canonicalize_name(r.name)
        if name == "tensorrt":  # the GPU machine's extra: never installed by README's install
            continue
        assert name in lock, f"{r.name} is not in requirements.lock: run the pip-compile line in README"
        assert r.specifier.contains(lock[name], prereleases=True), f"the lock's {name}=={lock[name]} is outside {r}"


def test_what_is_installed_here_lies_inside_the_tested_ranges():
    seen = 0
    for r in _requirements():
        try:
            v = version(r.name)
        except PackageNotFoundError:  # an extra this environment did not install
            continue
        seen += 1
        assert r.specifier.contains(v, prereleases=True), f"installed {r.name}=={v} is outside the tested {r}"
    assert seen >= 16  # the core dependencies at least
