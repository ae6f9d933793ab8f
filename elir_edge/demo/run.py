"""`elir-edge demo`: the whole pipeline on the bundled trained model and its held-out images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from ..artifacts import write_json
from ..evaluate import make_eval_set, per_image
from ..export import ExportOptions, export_checkpoint
from ..images import load_images, to_uint8
from ..quantize import QuantizeOptions, quantize_export
from ..runners import OrtRunner
from ..strip import write_strip

NOT_YET = ["bench (speed percentiles, drift intervals with bootstrap CIs): `elir-edge bench` is not built yet"]


def run_demo(output: Path, seed: int = 0, quiet: bool = False) -> dict:
    """Export and quantize the demo checkpoint into `output`, restore the held-out images with the float
    and the int8 graph, write a strip and a report."""
    manifest = export_checkpoint(CHECKPOINT, ExportOptions(output=output, seed=seed), quiet=quiet)
    quant = quantize_export(QuantizeOptions(model=output, calib=CALIBRATION_DIR, seed=seed), quiet=quiet)
    s = manifest["settings"]
    images = load_images(HELDOUT_DIR, "held-out folder")
    es = make_eval_set(images, s["task"], s["height"], s["width"], manifest["arch"]["latent_channels"], seed)
    restored = OrtRunner(output / "model.onnx")(es.lq, es.eps)
    restored_int8 = OrtRunner(output / "model_int8_cpu.onnx")(es.lq, es.eps)
    degraded_q, float_q, int8_q = (per_image(x, es.hq) for x in (es.lq, restored, restored_int8))
    write_strip({"degraded input": [to_uint8(x) for x in es.lq],
                 "ELIR fp32 (ONNX Runtime)": [to_uint8(x) for x in restored],
                 "ELIR int8 (MCT, ONNX Runtime)": [to_uint8(x) for x in restored_int8],
                 "ground truth": [to_uint8(x) for x in es.hq]}, output / "demo_strip.png")
    report = {
        "checkpoint": str(CHECKPOINT), "export": manifest["folder"], "task": s["task"], "seed": seed,
        "images": es.names,
        "degraded_vs_gt": {k: float(np.mean(v)) for k, v in degraded_q.items()},
        "fp32_vs_gt": {k: float(np.mean(v)) for k, v in float_q.items()},
        "int8_vs_gt": {k: float(np.mean(v)) for k, v in int8_q.items()},
        "int8_vs_fp32": {k: float(np.mean(v)) for k, v in per_image(restored_int8, restored).items()},
        "per_image": {"degraded": degraded_q, "fp32": float_q, "int8": int8_q},
        "quantize": {k: quant[k] for k in ("size_ratio", "int8_vs_float", "int8_cpu_vs_float", "engine")},
        "strip": str(output / "demo_strip.png"),
        "not_run": NOT_YET,
    }
    write_json(output / "demo_report.json", report)
    return report
