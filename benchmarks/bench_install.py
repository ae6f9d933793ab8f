"""How long README's install takes with pip and with uv, on the same lock, with empty and with warm caches.

    python3 benchmarks/bench_install.py [--rounds 1] [--json OUT]

Each install goes into a new virtual environment made with `python3 -m venv` (not timed), with
`-c requirements.lock -e '.[rtx,openvino,ray,test]'` from this checkout, as README's first command does (uv,
at README's pin, with `--compile-bytecode`, as pip compiles at install; the demo after it is not timed).
"empty": a cache folder of its own that starts empty (`--cache-dir`; a "no cache" setting in the environment is
dropped); "warm": the same command into a new environment on that folder. uv is installed into the environment
first (not timed). The environments of the warm installs must hold the same packages at the same versions, with
torch's modules compiled; the caches go at the end of each round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ["-c", "requirements.lock", "-e", ".[rtx,openvino,ray,test]"]


def _uv_pin() -> str:
    """The uv README's install block pins."""
    block = (ROOT / "README.md").read_text().split("<!-- setup:install -->")[1].split("<!-- /setup:install -->")[0]
    found = re.search(r"'(uv==[^']+)'", block)
    if found is None:
        sys.exit("README's install block pins no uv ('uv==X.Y.Z'): nothing to time")
    return found[1]


def _install(tool: str, venv: Path, cache: Path) -> float:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_NO_CACHE_DIR", "UV_NO_CACHE")}
    if tool == "uv":
        subprocess.run([py, "-m", "pip", "install", "-q", "--no-cache-dir", _uv_pin()], check=True, env=env)
        cmd = [str(venv / "bin" / "uv"), "pip", "install", "-q", "--cache-dir", str(cache / "uv"), "--python", py,
               "--compile-bytecode", *SPEC]
    else:
        cmd = [py, "-m", "pip", "install", "-q", "--cache-dir", str(cache / "pip"), *SPEC]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def _packages(venv: Path) -> set[str]:
    """name==version of every distribution in the environment but the installers themselves."""
    code = ("import importlib.metadata as m; print('\\n'.join(sorted({d.metadata['Name'].lower().replace('_', '-') "
            "+ '==' + d.version for d in m.distributions()})))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True)
    return {line for line in out.stdout.split() if line.split("==")[0] not in ("pip", "uv")}


def _compiled(venv: Path) -> bool:
    """Whether torch's modules were compiled at install (none are later where PYTHONDONTWRITEBYTECODE is set)."""
    return any((venv / "lib").glob("python*/site-packages/torch/__pycache__/*.pyc"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="elir-edge-bench-install-") as tmp:
        for r in range(args.rounds):
            row = {"round": r + 1}
            for tool in ("pip", "uv"):
                cache = Path(tmp) / f"cache-{tool}-{r}"
                row[f"{tool}_empty_s"] = round(_install(tool, Path(tmp) / tool, cache), 1)
                row[f"{tool}_warm_s"] = round(_install(tool, Path(tmp) / tool, cache), 1)
                row[f"{tool}_packages"] = _packages(Path(tmp) / tool)
                if not _compiled(Path(tmp) / tool):
                    sys.exit(f"{tool} left torch's modules uncompiled")
                shutil.rmtree(cache)
            if row["pip_packages"] != row["uv_packages"]:
                sys.exit(f"pip and uv installed different packages: {sorted(row['pip_packages'] ^ row['uv_packages'])}")
            row["packages"] = len(row.pop("pip_packages"))
            del row["uv_packages"]
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version.split()[0], "uv": _uv_pin(), "rounds": rows}, indent=2)
                             + "\n")


if __name__ == "__main__":
    main()
