"""`elir-edge demo`: the whole pipeline on the bundled trained model and its held-out images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import CHECKPOINT, HELDOUT_DIR
from ..artifacts import write_json
from ..evaluate import make_eval_set, per_image
from ..export import ExportOptions, export_checkpoint
from ..images import load_images, to_uint8
from ..runners import OrtRunner
from ..strip import write_strip

NOT_YET = ["quantize (INT8 with MCT): `elir-edge quantize` is not built yet",
           "bench (speed percentiles, drift intervals): `elir-edge bench` is not built yet"]


def run_demo(output: Path, seed: int = 0, quiet: bool = False) -> dict:
    """Export the demo checkpoint to `output`, restore the held-out images, write a strip and a report."""
    manifest = export_checkpoint(CHECKPOINT, ExportOptions(output=output, seed=seed), quiet=quiet)
    s = manifest["settings"]
    images = load_images(HELDOUT_DIR, "held-out folder")
    es = make_eval_set(images, s["task"], s["height"], s["width"], manifest["arch"]["latent_channels"], seed)
    restored = OrtRunner(output / "model.onnx")(es.lq, es.eps)
    degraded_q, float_q = per_image(es.lq, es.hq), per_image(restored, es.hq)
    write_strip({"degraded input": [to_uint8(x) for x in es.lq],
                 "ELIR fp32 (ONNX Runtime)": [to_uint8(x) for x in restored],
                 "ground truth": [to_uint8(x) for x in es.hq]}, output / "demo_strip.png")
    report = {
        "checkpoint": str(CHECKPOINT), "export": manifest["folder"], "task": s["task"], "seed": seed,
        "images": es.names,
        "degraded_vs_gt": {k: float(np.mean(v)) for k, v in degraded_q.items()},
        "fp32_vs_gt": {k: float(np.mean(v)) for k, v in float_q.items()},
        "per_image": {"degraded": degraded_q, "fp32": float_q},
        "strip": str(output / "demo_strip.png"),
        "not_run": NOT_YET,
    }
    write_json(output / "demo_report.json", report)
    return report
