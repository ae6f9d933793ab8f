"""Export benchmark: exported fp32 ONNX on ONNX Runtime vs the looped PyTorch model (eager), same threads,
and the peak memory of exporting the bfr preset at 512 px.

    python benchmarks/bench_export.py [--threads 2] [--repeats 7] [--json benchmarks/results/export.json]

Goals (issue 2): ratio ORT / eager <= 1.0 for sr at 256 px; bfr 512 px export peak RSS < 3 GB.
Weights are random (speed does not depend on their values); shapes are the presets'.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from elir_edge.bench.speed import measure_interleaved
from elir_edge.common.tables import table
from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.synthetic import random_model, save_checkpoint
from elir_edge.runtime.ort import ort_session


def speed(tmp: Path, threads: int, repeats: int) -> dict:
    p = PRESETS["sr"]
    model = random_model(preset_arch("sr"), k=p.k_steps, sigma=p.sigma_s)
    ckpt = save_checkpoint(model, tmp / "sr.pth", "release")
    export_checkpoint(ckpt, ExportOptions(task="sr", output=tmp / "sr"), quiet=True)
    torch.set_num_threads(threads)
    sess = ort_session(tmp / "sr" / "model.onnx", threads)
    lq, eps = torch.rand(1, 3, 256, 256), torch.randn(1, 16, 32, 32)
    feeds = {"lq": lq.numpy(), "eps": eps.numpy()}

    def eager():
        with torch.no_grad():
            model(lq, eps)

    speeds = measure_interleaved({"eager": eager, "onnx": lambda: sess.run(None, feeds)}, warmup_s=0,
                                 iterations=repeats, duration_s=0)
    med = {k: v["median_ms"] / 1000 for k, v in speeds.items()}
    return {"preset": "sr", "image": 256, "threads": threads, "repeats": repeats,
            "eager_s": med["eager"], "onnx_fp32_s": med["onnx"], "ratio_onnx_over_eager": med["onnx"] / med["eager"]}


def export_peak_memory(tmp: Path) -> dict:
    """Export bfr at 512 px in a child process; its peak RSS is the figure (ru_maxrss of children)."""
    model = random_model(preset_arch("bfr", overparam=True), k=5, sigma=0.1)
    ckpt = save_checkpoint(model, tmp / "bfr.ckpt", "training")
    del model
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "elir_edge.cli", "export", str(ckpt), "--task", "bfr", "-q",
                    "-o", str(tmp / "bfr")], check=True, stdout=subprocess.DEVNULL)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    manifest = json.loads((tmp / "bfr" / "manifest.json").read_text())
    return {"preset": "bfr", "image": 512, "checkpoint": "training format (over-parameterized)",
            "peak_rss_gb": max(peak_kb, before) * 1024 / 1e9, "seconds": time.perf_counter() - t0,
            "verification_max_abs_err": manifest["verification"]["max_abs_err"],
            "fold_error": manifest["fold"]["max_abs_err"], "onnx_mb": manifest["onnx"]["bytes"] / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sp = speed(tmp, args.threads, args.repeats)
        mem = export_peak_memory(tmp)
    print(table([["sr 256 px, eager PyTorch (looped)", f"{sp['eager_s'] * 1000:.0f} ms", "1.00x"],
                 ["sr 256 px, exported fp32 ONNX Runtime", f"{sp['onnx_fp32_s'] * 1000:.0f} ms",
                  f"{sp['ratio_onnx_over_eager']:.2f}x time (goal <= 1.0)"]],
                header=["path", f"median of {args.repeats}, {args.threads} threads", "ratio"]))
    print(table([["bfr 512 px export peak RSS", f"{mem['peak_rss_gb']:.2f} GB (goal < 3)"],
                 ["bfr export wall time", f"{mem['seconds']:.0f} s"],
                 ["bfr ONNX vs PyTorch max abs err", f"{mem['verification_max_abs_err']:.2e}"],
                 ["bfr fold error", f"{mem['fold_error']:.2e}"]], numeric=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"speed": sp, "export_memory": mem}, indent=2) + "\n")


if __name__ == "__main__":
    main()
