"""fp16 and int8+fp16 graphs against fp32, and TensorRT-RTX engines built from them for the RTX 2080 Ti (SM75)
on this machine without a GPU: build time, size, layers.

    python benchmarks/bench_fp16_engines.py --json benchmarks/results/fp16_engines.json

Rows: the bundled demo model (trained: its export, then quantize with default options on calibration/),
and every task preset at the paper's size (random weights of the official shapes, export only). PSNR vs
the fp32 graph on ONNX Runtime is measured on the held-out photographs (elir_edge/demo/heldout) degraded
the preset's way, same eps for every graph. The presets' int8 graphs are not made here (quantize at
these sizes is what benchmarks/bench_quantize_scale.py measures).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from elir_edge.model.eval_inputs import eval_inputs
from elir_edge.common.images import load_images
from elir_edge.common.metrics import psnr
from elir_edge.common.tables import human_bytes, table
from elir_edge.demo import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from elir_edge.engines import BuildOptions, build_engine
from elir_edge.exporter import ExportOptions, export_checkpoint
from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.synthetic import random_model, save_checkpoint
from elir_edge.runtime.ort import OrtRunner

ROOT = Path(__file__).resolve().parents[1]


def psnr_vs(folder: Path, names: list[str], task: str, size: int) -> dict[str, float]:
    es = eval_inputs(load_images(HELDOUT_DIR), task, size, size, 16, seed=0)
    ref = OrtRunner(folder / "model.onnx")(es.lq, es.eps)
    out = {}
    for name in names:
        got = OrtRunner(folder / name)(es.lq, es.eps)
        out[name] = float(np.mean([psnr(g, r) for g, r in zip(got, ref)]))
    return out


def engines(folder: Path, names: list[str], sms: list[str]) -> dict[str, dict]:
    out = {}
    for name in names:
        m = build_engine(folder / name, BuildOptions(sms=sms, output=folder / (Path(name).stem + ".rtx.engine")),
                         quiet=True)
        out[name] = {k: m[k] for k in ("bytes", "build_seconds", "layers", "precision", "builder_version", "target_sms")}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(PRESETS))
    ap.add_argument("--sm", nargs="+", default=["75"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {"cpu_flags": sorted(set(re.findall(r"avx512_vnni|avx2|amx\w*", Path("/proc/cpuinfo").read_text()))),
               "sms": args.sm, "rows": []}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo = tmp / "demo"
        t0 = time.perf_counter()
        export_checkpoint(CHECKPOINT, ExportOptions(output=demo), quiet=True)
        subprocess.run([sys.executable, "-m", "elir_edge.cli", "quantize", "-q", "--model", str(demo), "--calib",
                        str(CALIBRATION_DIR), "--no-engine"], check=True, stdout=subprocess.DEVNULL)
        graphs = ["model.onnx", "model_fp16.onnx", "model_int8.onnx", "model_int8_fp16.onnx"]
        quality = psnr_vs(demo, graphs[1:], "denoising", 256)
        built = engines(demo, graphs, args.sm)
        results["rows"].append({"model": "demo (trained), 256 px", "psnr_vs_fp32": quality, "engines": built,
                                "seconds": time.perf_counter() - t0})
        for task in args.tasks:
            p = PRESETS[task]
            folder = tmp / task
            ckpt = save_checkpoint(random_model(preset_arch(task), k=p.k_steps, sigma=p.sigma_s), tmp / f"{task}.pth",
                                   "release")
            manifest = export_checkpoint(ckpt, ExportOptions(task=task, output=folder), quiet=True)
            quality = psnr_vs(folder, ["model_fp16.onnx"], task, p.image_size)
            built = engines(folder, ["model.onnx", "model_fp16.onnx"], args.sm)
            results["rows"].append({"model": f"{task} preset (random weights), {p.image_size} px, K={p.k_steps}",
                                    "psnr_vs_fp32": quality, "engines": built,
                                    "fp16_norms_kept_fp32": manifest["fp16"]["norms_kept_fp32"],
                                    "fp16_norm_input_peak": manifest["fp16"]["norm_input_peak"]})
            (folder / "weights.safetensors").unlink()
    for r in results["rows"]:
        for name, e in r["engines"].items():
            q = r["psnr_vs_fp32"].get(name)
            rows.append([r["model"], name, e["precision"], f"{q:.1f}" if q is not None else "(reference)",
                         f"SM{','.join(e['target_sms'])}", f"{e['build_seconds']:.1f} s", human_bytes(e["bytes"]),
                         str(e["layers"])])
    print(f"TensorRT-RTX {results['rows'][0]['engines']['model.onnx']['builder_version']}, CPU {results['cpu_flags']}")
    print(table(rows, header=["model", "graph", "precision", "PSNR vs fp32 dB", "engine for", "build", "size", "layers"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
