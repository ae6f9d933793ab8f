"""INT8 benchmark on the bundled trained demo model (issue 4).

    python benchmarks/bench_quantize.py [--threads 2] [--json benchmarks/results/quantize.json]

Exports the demo checkpoint and quantizes it on calibration/ (MCT, defaults) into a temporary folder,
then runs `elir-edge bench` in a fresh process (timing in the process that just ran MCT is skewed by
torch's idle worker threads) on fp32, int8 CPU form and int8 TensorRT form with the held-out demo images
(same degradations, same eps), and reports which nodes ONNX Runtime fuses into integer kernels.
Goals: int8 >= 35 dB vs float, GT PSNR within 0.2 dB of float, file <= 0.3x, CPU speed-up (goal 2.5x).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from elir_edge.common.tables import table
from elir_edge.demo import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.quantize.stage import QuantizeOptions, quantize_export

FILES = {"fp32": "model.onnx", "int8 CPU form (U8S8)": "model_int8_cpu.onnx",
         "int8 TensorRT form (S8S8)": "model_int8.onnx"}


def optimized_op_counts(path: Path, threads: int) -> Counter:
    """Op types of the graph ONNX Runtime actually runs (after its Q/DQ fusions)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "elir_demo"
        export_checkpoint(CHECKPOINT, ExportOptions(output=folder), quiet=True)
        t0 = time.perf_counter()
        rep = quantize_export(QuantizeOptions(model=folder, calib=CALIBRATION_DIR), quiet=True)
        q_seconds = time.perf_counter() - t0
        bench_json = Path(d) / "bench.json"
        cmd = [sys.executable, "-m", "elir_edge.cli", "bench", "--data", str(HELDOUT_DIR), "--threads",
               str(args.threads), "--json", str(bench_json)]
        for f in FILES.values():
            cmd += ["--engine", str(folder / f)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        bench = json.loads(bench_json.read_text())
        sizes = {k: (folder / f).stat().st_size for k, f in FILES.items()}
        ops = {k: dict(optimized_op_counts(folder / f, args.threads)) for k, f in FILES.items()}
    rows = []
    for (k, _), r in zip(FILES.items(), bench["rows"]):
        vs_float = "-" if r["is_reference"] else f"{r['vs_float']['psnr']['mean']['value']:.1f}"
        rows.append([k, f"{r['speed']['median_ms']:.0f} ms", f"{r['speed']['p95_ms']:.0f} ms",
                     f"{r['speed']['ratio_vs_first']:.2f}x", f"{sizes[k] / 1e6:.2f} MB",
                     f"{sizes[k] / sizes['fp32']:.2f}x", vs_float, f"{r['vs_gt']['psnr']['mean']['value']:.2f}",
                     f"{r['vs_gt']['ssim']['mean']['value']:.4f}"])
    print(table(rows, header=["demo model, 256 px, ONNX Runtime CPU", "median", "p95", "speed-up", "file", "size",
                              "PSNR vs fp32", "PSNR vs GT", "SSIM vs GT"]))
    cpu_ops = ops["int8 CPU form (U8S8)"]
    print(f"\nONNX Runtime's int8 CPU graph: {cpu_ops.get('QLinearConv', 0)} QLinearConv, "
          f"{cpu_ops.get('Conv', 0) + cpu_ops.get('FusedConv', 0)} float Conv, "
          f"{cpu_ops.get('ConvTranspose', 0)} float ConvTranspose, {cpu_ops.get('Transpose', 0)} Transpose, "
          f"{cpu_ops.get('DequantizeLinear', 0)} DequantizeLinear, {cpu_ops.get('QuantizeLinear', 0)} QuantizeLinear")
    print(f"quantize took {q_seconds:.0f} s; {bench['quality']['images']} held-out images; "
          f"{args.threads} threads; timing: `elir-edge bench` defaults (0.2 s warm-up, >= 10 runs and >= 3 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "bytes": sizes, "ort_optimized_ops": ops,
                                         "quantize_seconds": q_seconds, "bench": bench, "quant_report": rep},
                                        indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
