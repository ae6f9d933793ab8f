"""The quantize report as a readable table (the JSON is quant_report.json)."""

from __future__ import annotations

from elir_edge.common.tables import human_bytes, table


def quantize_table(r: dict) -> str:
    f = r["files"]
    steps = ", ".join(f"{x:.1f}" for x in r["latent_snr_db_per_step"])
    rows = [
        ["artifacts", f"{r['export']}/model_int8.onnx (TensorRT), model_int8_cpu.onnx (ONNX Runtime CPU)"],
        ["layers", f"{r['layers']['quantized']} convs int8, {len(r['layers']['float'])} kept float"],
        ["weights file", f"{human_bytes(f['model.onnx']['bytes'])} -> {human_bytes(f['model_int8.onnx']['bytes'])} "
                         f"({r['size_ratio']:.2f}x)"],
        ["calibration", f"{r['calibration']['images']} images from {r['calibration']['folder']} "
                        f"({r['calibration']['held_out']} held out for the figures below)"],
        ["int8 vs float", f"PSNR {r['int8_vs_float']['psnr_db']:.1f} dB, SSIM {r['int8_vs_float']['ssim']:.4f} "
                          f"(CPU form: {r['int8_cpu_vs_float']['psnr_db']:.1f} dB, {r['int8_cpu_vs_float']['ssim']:.4f})"],
        ["latent SNR per step", f"{steps} dB (coarse estimate, then after each Euler step)"],
        ["TensorRT rules", "pass (R1-R8)"],
        ["engine", r["engine"]["engine"] if r["engine"]["built"] else f"not built: {r['engine']['reason']}"],
        ["time", f"{r['seconds']:.0f} s"],
    ]
    sens = [[b, f"{v:.1f}"] for b, v in r["sensitivity_psnr_db_block_alone_int8"].items()]
    return (table(rows, numeric=False) + "\n\n" +
            table(sens, header=["block quantized alone", "PSNR dB vs float"]))
