"""The quantize report as a readable table (the JSON is quant_report.json)."""

from __future__ import annotations

from elir_edge.common.tables import human_bytes, table
from elir_edge.model.export_folder import FLOAT, INT8_FILES
from elir_edge.quantize.runtimes import runtimes_line


def quantize_table(r: dict) -> str:
    f = r["files"]
    steps = ", ".join(f"{x:.1f}" for x in r["latent_snr_db_per_step"])
    rows = [
        ["artifacts", f"{r['export']}/model_int8.onnx (TensorRT), model_int8_fp16.onnx (TensorRT, fp16 float "
                      "parts), model_int8_cpu.onnx (CPU, 7-bit weights), model_int8_cpu_w8.onnx (CPU, 8-bit weights), "
                      "model_int8_cpu_s8.onnx (OpenVINO, no zero points)"],
        ["layers", f"{r['layers']['quantized']} convs int8, {len(r['layers']['float'])} kept float"],
        ["file sizes", f"float {human_bytes(f[FLOAT]['bytes'])}; "
                       + "; ".join(f"{_short(n)} {human_bytes(v['bytes'])} ({v['ratio_vs_float']:.2f}x)"
                                   for n, v in f.items() if n in INT8_FILES)],
        ["calibration", f"{r['calibration']['images']} images from {r['calibration']['folder']} "
                        f"({r['calibration']['held_out']} held out for the figures below)"],
        ["int8 vs float", f"PSNR {r['int8_vs_float']['psnr_db']:.1f} dB, SSIM {r['int8_vs_float']['ssim']:.4f} "
                          f"(CPU form: {r['int8_cpu_vs_float']['psnr_db']:.1f} dB, {r['int8_cpu_vs_float']['ssim']:.4f}; "
                          f"with 8-bit weights: {r['int8_cpu_w8_vs_float']['psnr_db']:.1f} dB, "
                          f"{r['int8_cpu_w8_vs_float']['ssim']:.4f}; "
                          f"OpenVINO form: {r['int8_cpu_s8_vs_float']['psnr_db']:.1f} dB; "
                          f"int8+fp16: {r['int8_fp16_vs_float']['psnr_db']:.1f} dB)"],
        ["latent SNR per step", f"{steps} dB (coarse estimate, then after each Euler step)"],
        ["TensorRT rules", "pass (R1-R8) on model_int8.onnx and model_int8_fp16.onnx"],
        ["this CPU", r["cpu"]["verdict"]],
        ["computed right here", runtimes_line(r["runtimes_here"])],
        ["ship to the CPU", f"{r['cpu']['ship']['file']} for {r['cpu']['ship']['target']}: {r['cpu']['ship']['why']}"],
        ["time", f"{r['seconds']:.0f} s; MCT: " + ", ".join(f"{ph['phase'].split(' (')[0].lower()} {ph['seconds']:.0f} s"
                                                          for ph in r["profile"]["mct_phases"])
                 + f"; peak memory {r['profile']['memory_gb']['peak_rss_gb']:.1f} GB"
                 + _peak_stage(r["profile"].get("peak_stage"))],
    ]
    sens = [[b, f"{v:.1f}"] for b, v in r["sensitivity_psnr_db_block_alone_int8"].items()]
    return (table(rows, numeric=False) + "\n\n" +
            table(sens, header=["block quantized alone", "PSNR dB vs float"]))


def _peak_stage(stage: str | None) -> str:
    """Where the peak was reached: what a user whose run does not fit has to make lighter."""
    return f", reached in: {stage}" if stage else ", reached before the first stage"


def _short(name: str) -> str:
    return name.removeprefix("model_").removesuffix(".onnx")


def int8_sizes(files: dict) -> str:
    """Each int8 file's size against the float graph, e.g. `int8 0.27x, int8_cpu 0.29x` (the report's `files`)."""
    return ", ".join(f"{_short(n)} {v['ratio_vs_float']:.2f}x" for n, v in files.items() if n in INT8_FILES)
