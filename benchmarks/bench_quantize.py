"""INT8 benchmark on the bundled trained demo model (issue 4).

    python benchmarks/bench_quantize.py [--threads 2] [--repeats 9] [--json benchmarks/results/quantize.json]

Exports the demo checkpoint and quantizes it on calibration/ (MCT, defaults) into a temporary folder,
then measures on ONNX Runtime CPU, in one run: latency of fp32 vs int8 (both Q/DQ flavours), file
size, quality of int8 against the float model and against ground truth on the held-out demo images
(same degradations, same eps), and which nodes ONNX Runtime fuses into integer kernels.
Goals: int8 >= 35 dB vs float, GT PSNR within 0.2 dB of float, file <= 0.3x, CPU speed-up (goal 2.5x).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from elir_edge.demo import CHECKPOINT, HELDOUT_DIR
from elir_edge.evaluate import make_eval_set, per_image
from elir_edge.export import ExportOptions, export_checkpoint
from elir_edge.images import load_images
from elir_edge.quality import psnr
from elir_edge.quantize import QuantizeOptions, quantize_export
from elir_edge.report import table
from elir_edge.runners import OrtRunner
from elir_edge.timing import interleaved_medians

ROOT = Path(__file__).resolve().parent.parent


def optimized_op_counts(path: Path, threads: int) -> Counter:
    """Op types of the graph ONNX Runtime actually runs (after its Q/DQ fusions)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.optimized_model_filepath = str(Path(d) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "elir_demo"
        export_checkpoint(CHECKPOINT, ExportOptions(output=folder), quiet=True)
        t0 = time.perf_counter()
        rep = quantize_export(QuantizeOptions(model=folder, calib=ROOT / "calibration"), quiet=True)
        q_seconds = time.perf_counter() - t0
        paths = {"fp32": folder / "model.onnx", "int8 (CPU form, U8S8)": folder / "model_int8_cpu.onnx",
                 "int8 (TensorRT form, S8S8)": folder / "model_int8.onnx"}
        runners = {k: OrtRunner(p, args.threads) for k, p in paths.items()}
        es = make_eval_set(load_images(HELDOUT_DIR), "denoising", 256, 256, 16, seed=0)
        outs = {k: r(es.lq, es.eps) for k, r in runners.items()}
        one = {"lq": es.lq[:1], "eps": es.eps[:1]}
        med = interleaved_medians({k: (lambda r=r: r.session.run(None, one)) for k, r in runners.items()},
                                  args.repeats)
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        ops = {k: dict(optimized_op_counts(p, args.threads)) for k, p in paths.items()}
    gt = {k: per_image(o, es.hq) for k, o in outs.items()}
    vs_float = {k: float(np.mean([psnr(a, b) for a, b in zip(o, outs["fp32"])])) for k, o in outs.items()}
    rows = []
    for k in runners:
        rows.append([k, f"{med[k] * 1000:.0f} ms", f"{med['fp32'] / med[k]:.2f}x", f"{sizes[k] / 1e6:.2f} MB",
                     f"{sizes[k] / sizes['fp32']:.2f}x", "-" if k == "fp32" else f"{vs_float[k]:.1f}",
                     f"{np.mean(gt[k]['psnr']):.2f}", f"{np.mean(gt[k]['ssim']):.4f}"])
    print(table(rows, header=["demo model, 256 px, ONNX Runtime CPU", f"median of {args.repeats}", "speed-up",
                              "file", "size", "PSNR vs fp32", "PSNR vs GT", "SSIM vs GT"]))
    cpu_ops = ops["int8 (CPU form, U8S8)"]
    print(f"\nONNX Runtime's int8 CPU graph: {cpu_ops.get('QLinearConv', 0)} QLinearConv, "
          f"{cpu_ops.get('Conv', 0) + cpu_ops.get('FusedConv', 0)} float Conv, "
          f"{cpu_ops.get('ConvTranspose', 0)} float ConvTranspose, {cpu_ops.get('DequantizeLinear', 0)} DequantizeLinear")
    print(f"quantize took {q_seconds:.0f} s; {len(es.names)} held-out images")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "threads": args.threads, "repeats": args.repeats, "median_s": med, "bytes": sizes,
            "psnr_vs_fp32": vs_float, "gt": {k: {m: float(np.mean(v)) for m, v in q.items()} for k, q in gt.items()},
            "ort_optimized_ops": ops, "quantize_seconds": q_seconds, "quant_report": rep}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
