"""`elir-edge demo`: the whole pipeline on the bundled trained model and its held-out images."""

from __future__ import annotations

from pathlib import Path

from elir_edge.bench.stage import BenchOptions, run_bench
from elir_edge.common.files import write_json
from elir_edge.common.images import load_images, to_uint8
from elir_edge.demo import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.engines import turing_engine
from elir_edge.model.eval_inputs import eval_inputs
from elir_edge.model.export_folder import FLOAT, ExportFolder
from elir_edge.quantize.stage import QuantizeOptions, quantize_export
from elir_edge.restore.strip import write_strip
from elir_edge.runtime.ort import OrtRunner


def run_demo(output: Path, seed: int = 0, quiet: bool = False) -> dict:
    """Export and quantize the demo checkpoint into `output`, bench float vs int8 on the held-out images,
    write a before/after strip and a report."""
    manifest = export_checkpoint(CHECKPOINT, ExportOptions(output=output, seed=seed), quiet=quiet)
    quant = quantize_export(QuantizeOptions(model=output, calib=CALIBRATION_DIR, seed=seed), quiet=quiet)
    folder = ExportFolder(output)
    quant["engine"] = turing_engine(folder, quiet=quiet)  # the RTX 2080 Ti's FP16 engine
    float_onnx = output / FLOAT
    bench = run_bench(BenchOptions(engines=[float_onnx, output], data=HELDOUT_DIR, seed=seed, iterations=5,
                                   duration=1.0, plot=output / "demo_bench.png"))  # the folder: its best CPU file here
    int8_onnx = Path(bench["rows"][1]["artifact"])
    s = folder.settings
    es = eval_inputs(load_images(HELDOUT_DIR, "held-out folder"), s.task, s.height, s.width, folder.latent_channels,
                     seed)  # the inputs bench used (same seed)
    write_strip({"degraded input": [to_uint8(x) for x in es.lq],
                 "ELIR fp32 (ONNX Runtime)": [to_uint8(x) for x in OrtRunner(float_onnx)(es.lq, es.eps)],
                 "ELIR int8 (MCT, ONNX Runtime)": [to_uint8(x) for x in OrtRunner(int8_onnx)(es.lq, es.eps)],
                 "ground truth": [to_uint8(x) for x in es.hq]}, output / "demo_strip.png")
    report = {"checkpoint": str(CHECKPOINT), "export": manifest["folder"], "seed": seed,
              "quantize": {k: quant[k] for k in ("size_ratio", "files", "int8_vs_float", "int8_cpu_vs_float",
                                                 "int8_cpu_w8_vs_float", "int8_cpu_s8_vs_float", "int8_fp16_vs_float",
                                                 "engine", "cpu",
                                                 "runtimes_here")},
              "bench": bench, "strip": str(output / "demo_strip.png"), "plot": str(output / "demo_bench.png"),
              "report": str(output / "demo_report.json")}
    write_json(Path(report["report"]), report)
    return report
