"""The export manifest as a readable table (the JSON is manifest.json)."""

from __future__ import annotations

from elir_edge.common.tables import human_bytes, table


def export_table(m: dict) -> str:
    s = m["settings"]
    rows = [
        ["artifact", f"{m['folder']}/model.onnx"],
        ["task", f"{s['task']}  K={s['k_steps']}  sigma_s={s['sigma_s']:g}  {s['batch']}x3x{s['height']}x{s['width']}"],
        ["checkpoint", f"{m['source']['format']} format, {m['source']['params'] / 1e6:.2f} M params"],
        ["deployed params", f"{m['deployed_params'] / 1e6:.2f} M"],
        ["GMACs / image", f"{m['gmacs_per_image']:.1f}"],
        ["ONNX size", human_bytes(m["onnx"]["bytes"])],
        ["fold error", f"{m['fold']['max_abs_err']:.2e} ({m['fold']['pairs']} conv pairs)" if m["fold"]["pairs"]
         else "none (checkpoint already collapsed)"],
        ["ONNX vs PyTorch", f"max abs {m['verification']['max_abs_err']:.2e}, PSNR {m['verification']['psnr_db']:.1f} dB"],
        *([["fp16 graph", f"model_fp16.onnx, PSNR {m['fp16']['psnr_vs_fp32_db']:.1f} dB vs fp32"
                          + (f", {len(m['fp16']['norms_kept_fp32'])} norm(s) kept fp32" if m['fp16']['norms_kept_fp32']
                             else "")
                          + ("" if m['fp16']['psnr_vs_fp32_db'] >= 60 else " (below 60 dB: prefer fp32 or int8)")]]
          if m.get("fp16") else []),
        ["time", f"{m['seconds']:.1f} s"],
    ]
    return table(rows, numeric=False)
