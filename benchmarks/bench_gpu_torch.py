"""The paper's method on a GPU: the looped PyTorch model of every preset at the paper's sizes, timed by
`elir-edge bench --device cuda` (fp32 and fp16, with and without a CUDA graph), random weights of the
official shapes (speed does not depend on the values). Needs an NVIDIA GPU; says so and exits 2 without.

    python benchmarks/bench_gpu_torch.py --json benchmarks/results/gpu_torch.json

Each row: host wall clock per run (copy in, forward, copy out) and the CUDA-event compute time of a
forward queued behind another (launch gaps not counted), as `elir-edge bench` reports them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from elir_edge.bench import BenchOptions, run_bench
from elir_edge.common.tables import table
from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.synthetic import random_model

MODES = {"fp32": dict(), "fp16": dict(half=True), "fp16 + CUDA graph": dict(half=True, cuda_graph=True),
         "fp32 + CUDA graph": dict(cuda_graph=True)}


def export_folder(task: str, folder: Path) -> Path:
    """weights.safetensors + manifest.json of the preset at its paper size (what `elir-edge export` writes for
    the PyTorch runner), without the ONNX, which this benchmark does not use."""
    from safetensors.torch import save_file

    p = PRESETS[task]
    model = random_model(preset_arch(task), k=p.k_steps, sigma=p.sigma_s)
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "weights.safetensors"))
    manifest = {"settings": {"task": task, "k_steps": p.k_steps, "sigma_s": p.sigma_s, "height": p.image_size,
                             "width": p.image_size, "batch": 1},
                "arch": model.arch.to_dict(), "weights": {"file": "weights.safetensors"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "weights.safetensors"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["bfr", "sr", "bsr"])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu_torch: no CUDA GPU visible to torch: run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    rows, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            weights = export_folder(task, Path(tmp) / task)
            for mode, kw in MODES.items():
                r = run_bench(BenchOptions(engines=[weights], device="cuda", iterations=args.iterations,
                                           duration=args.duration, warmup=1.0, **kw))
                row = r["rows"][0]
                s, d = row["speed"], row["speed"]["device"]
                p = PRESETS[task]
                rows.append([task, f"{p.image_size}", str(p.k_steps), mode, f"{s['median_ms']:.2f}",
                             f"{s['p99_ms']:.2f}", f"{d['compute']['median_ms']:.2f}", f"{d['compute']['throughput_img_s']:.1f}",
                             f"{p.paper_fps_2080ti}"])
                raw.append({"task": task, "mode": mode, "row": row, "machine": r["machine"]})
    gpu = raw[0]["machine"]["gpu"]
    print(f"{gpu.get('gpu_name', torch.cuda.get_device_name())}, torch {torch.__version__}, "
          f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, batch 1")
    print(table(rows, header=["preset", "px", "K", "PyTorch mode", "wall median ms", "wall p99", "compute median ms",
                              "img/s (compute)", "paper img/s (RTX 2080 Ti)"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"gpu": gpu, "torch": torch.__version__,
                                         "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "runs": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
