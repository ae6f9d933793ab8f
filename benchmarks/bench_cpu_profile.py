"""Where a CPU runtime's time goes in each file: kernel time per op type and per convolution shape (issue 30).

    .venv/bin/python benchmarks/bench_cpu_profile.py FILE [FILE ...] [--runtime onnxruntime|openvino]
        [--runs 40] [--threads 2] [--json OUT]

ONNX Runtime's own profiler (`SessionOptions.enable_profiling`), or OpenVINO's per-layer counters
(`PERF_COUNT`, inference precision f32 as elir-edge runs it), on one seeded input per file, the files taking
turns run by run; kernel times are per run (ONNX Runtime's averaged over every run, its profiler's warm-up
included; OpenVINO's over the timed runs), wall times the median of the timed runs. ONNX Runtime names its
fused kernels (QLinearConv) and the conv shapes; OpenVINO names the layer type and, in the second table, the
primitive that ran it (e.g. `brgconv_avx512_amx_I8`, a reorder). Use it to compare two int8 files of one model
op by op: which kernels they share, and what is left between them.
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


class OrtProfile:
    """One ONNX Runtime session with its profiler on; kernel time per op type and per conv shape after the runs."""

    def __init__(self, path: Path, threads: int, work: Path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(work / path.stem)
        self.session, self.runs = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]), 0
        self.inputs = [(i.name, i.shape) for i in self.session.get_inputs()]

    def run(self, x: dict) -> None:
        self.session.run(None, x)
        self.runs += 1

    def times(self) -> tuple[dict, dict]:
        return kernel_times(self.session.end_profiling(), self.runs)


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


class OpenVinoProfile:
    """One file compiled as elir-edge runs it (f32 inference precision) with OpenVINO's per-layer counters on,
    summed over the runs after the warm-up: time per layer type and per (layer type, primitive that ran it)."""

    def __init__(self, path: Path, threads: int, work: Path):
        import openvino as ov

        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": "YES",
                  "INFERENCE_NUM_THREADS": threads}
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request, self.runs = compiled.create_infer_request(), 0
        self.inputs = [(i.any_name, list(i.get_partial_shape().get_min_shape())) for i in compiled.inputs]
        self.by_type = collections.defaultdict(lambda: [0.0, 0])
        self.by_primitive = collections.defaultdict(lambda: [0.0, 0])

    def run(self, x: dict) -> None:
        self.request.infer(x)
        self.runs += 1
        if self.runs <= WARMUP:
            return
        for p in self.request.profiling_info:
            if p.status == p.Status.EXECUTED:
                for table, key in ((self.by_type, p.node_type), (self.by_primitive, f"{p.node_type} {p.exec_type}")):
                    table[key][0] += p.real_time.total_seconds() * 1e3
                    table[key][1] += 1

    def times(self) -> tuple[dict, dict]:
        runs = self.runs - WARMUP
        return tuple({k: [round(t / runs, 3), round(n / runs)] for k, (t, n) in table.items()}
                     for table in (self.by_type, self.by_primitive))


PROFILES = {"onnxruntime": OrtProfile, "openvino": OpenVinoProfile}


def feeds(inputs: list[tuple[str, list]]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.random([d if isinstance(d, int) else 1 for d in shape], dtype=np.float32)
            for name, shape in inputs}


def measure(files: list[Path], runs: int, threads: int, runtime: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        profiles = [PROFILES[runtime](f, threads, Path(tmp)) for f in files]
        inputs = [feeds(p.inputs) for p in profiles]
        walls = [[] for _ in files]
        for r in range(WARMUP + runs):
            for p, x, w in zip(profiles, inputs, walls):
                t = time.perf_counter()
                p.run(x)
                if r >= WARMUP:
                    w.append(time.perf_counter() - t)
        out = {}
        for f, p, w in zip(files, profiles, walls):
            ops, convs = p.times()
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
    ap.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = measure(args.files, args.runs, args.threads, args.runtime)
    print(table(result, "ops", 30) + "\n\n" + table(result, "convs", 30 if args.runtime == "openvino" else 12))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
