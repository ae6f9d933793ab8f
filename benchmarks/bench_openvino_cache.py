"""How long opening a file on OpenVINO takes with elir-edge's model cache and without it (runtime/openvino.py).

    .venv/bin/python benchmarks/bench_openvino_cache.py FILE [FILE ...] [--rounds 5] [--json OUT]

Each open is a new Python process (a user's next `restore` or `bench`), timed from before `OpenVinoRunner(...)`
to after it (read, compile or load from the cache, first request made); the interpreter's own start and imports
are outside the time. Per file, in turns round by round: with the cache off (ELIR_EDGE_CACHE=off), and with a
cache folder the first round fills (its first open is the "first" figure: a compile plus writing the entry).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

OPEN = ("import sys, time; from pathlib import Path; from elir_edge.runtime.openvino import OpenVinoRunner; "
        "t = time.perf_counter(); OpenVinoRunner(Path(sys.argv[1])); print(time.perf_counter() - t)")


def open_seconds(path: Path, cache: str) -> float:
    out = subprocess.run([sys.executable, "-c", OPEN, str(path)], env={**os.environ, "ELIR_EDGE_CACHE": cache},
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for path in args.files:
        with tempfile.TemporaryDirectory(prefix="elir-edge-bench-cache-") as cache:
            first, off, cached = open_seconds(path, cache), [], []
            for _ in range(args.rounds):
                off.append(open_seconds(path, "off"))
                cached.append(open_seconds(path, cache))
        rows.append({"file": str(path), "first_s": first, "off_median_s": statistics.median(off),
                     "off_s": off, "cached_median_s": statistics.median(cached), "cached_s": cached})
        r = rows[-1]
        print(f"{path.name}: cache off {r['off_median_s']:.2f} s [{min(off):.2f}, {max(off):.2f}], first open with "
              f"the cache {first:.2f} s, from the cache {r['cached_median_s']:.2f} s [{min(cached):.2f}, "
              f"{max(cached):.2f}] (medians of {args.rounds})")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
