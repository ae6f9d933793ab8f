"""Where ONNX Runtime's CPU time goes in each file: kernel time per op type and per convolution shape (issue 30).

    .venv/bin/python benchmarks/bench_ort_profile.py FILE [FILE ...] [--runs 40] [--threads 2] [--json OUT]

ONNX Runtime's own profiler (`SessionOptions.enable_profiling`) on one seeded input per file, the files
taking turns run by run; kernel times are per run (the profiler's totals over the runs, warm-up excluded),
wall times the median of the timed runs. Use it to compare two int8 files of one model op by op: which
kernels they share, and what is left between them.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

WARMUP = 3


def session(path: Path, threads: int, work: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(work / path.stem)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def feeds(s: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
            for i in s.get_inputs()}


def kernel_times(trace: str, runs: int) -> tuple[dict, dict]:
    """ms per run and node count, by op type and by (op type, input shapes) for the convolutions."""
    by_op, by_shape = collections.defaultdict(lambda: [0.0, 0]), collections.defaultdict(lambda: [0.0, 0])
    for e in json.loads(Path(trace).read_text()):
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"]["op_name"]
        by_op[op][0] += e["dur"] / 1e3 / runs
        by_op[op][1] += 1 / runs
        if "Conv" in op:
            shape = lambda side: next(iter(e["args"][side][0].values()))  # noqa: E731 (first tensor's)
            key = f"{op} {shape('input_type_shape')} -> {shape('output_type_shape')}"
            by_shape[key][0] += e["dur"] / 1e3 / runs
            by_shape[key][1] += 1 / runs
    return ({k: [round(t, 3), round(n)] for k, (t, n) in by_op.items()},
            {k: [round(t, 3), round(n)] for k, (t, n) in by_shape.items()})


def measure(files: list[Path], runs: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sessions = [session(f, threads, Path(tmp)) for f in files]
        inputs = [feeds(s) for s in sessions]
        walls = [[] for _ in files]
        for r in range(WARMUP + runs):
            for s, x, w in zip(sessions, inputs, walls):
                t = time.perf_counter()
                s.run(None, x)
                if r >= WARMUP:
                    w.append(time.perf_counter() - t)
        out = {}
        for f, s, w in zip(files, sessions, walls):
            ops, convs = kernel_times(s.end_profiling(), WARMUP + runs)
            out[str(f)] = {"wall_ms_median": round(float(np.median(w)) * 1e3, 2),
                           "kernel_ms": round(sum(t for t, _ in ops.values()), 2), "ops": ops, "convs": convs}
    return out


def table(result: dict, key: str, top: int) -> str:
    names = list(result)
    rows = sorted({k for r in result.values() for k in r[key]},
                  key=lambda k: -max(r[key].get(k, [0])[0] for r in result.values()))[:top]
    head = "| " + key + " | " + " | ".join(Path(n).name for n in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    for k in rows:
        cells = [("%.2f ms x%d" % tuple(result[n][key][k])) if k in result[n][key] else "-" for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("| kernel time, all ops | " + " | ".join("%.1f ms" % result[n]["kernel_ms"] for n in names) + " |")
    lines.append("| wall, median | " + " | ".join("%.1f ms" % result[n]["wall_ms_median"] for n in names) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = measure(args.files, args.runs, args.threads)
    print(table(result, "ops", 30) + "\n\n" + table(result, "convs", 12))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
