"""The bench report for people (tables, plot) and for programs (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from elir_edge.common.files import atomic_file
from elir_edge.common.tables import table


def _ci(d: dict, fmt: str = "{:.2f}") -> str:
    lo, hi = d["ci95"]
    return f"{fmt.format(d['value'])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def bench_tables(r: dict, compare_paper: bool = False) -> str:
    speed = [[row["label"], row["runner"], str(row["speed"]["batch"])]
             + [f"{row['speed'][k]:.1f}" for k in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms")]
             + [f"{row['speed']['throughput_img_s']:.2f}", f"{row['speed']['ratio_vs_first']:.2f}x"]
             for row in r["rows"]]
    header = ["artifact", "runner", "batch", "min ms", "median", "mean", "p90", "p95", "p99", "img/s", "speed"]
    gpu = r["machine"]["gpu"] or {}
    runtimes = ", ".join(f"{k.replace('_', '-')} {gpu[k]}" for k in ("tensorrt", "tensorrt_rtx") if k in gpu)
    where = f" and {gpu['gpu_name']} (CUDA driver {gpu['gpu_cuda_driver']}{', ' + runtimes if runtimes else ''})" \
        if "gpu_name" in gpu else ""
    feats = r["machine"].get("cpu_features", {}).get("features")
    out = [f"{r['task']} {r['image_size']} on {r['machine']['cpu']} ({', '.join(feats) if feats else 'no SIMD flags read'})"
           f"{where}, threads {r['threads'] or 'default'}",
           "host wall clock per run (artifacts taking turns):", table(speed, header=header)]
    parts = ("h2d", "enqueue", "compute", "d2h", "end_to_end")
    device = [[row["label"]] + [f"{row['speed']['device'][k]['median_ms']:.2f}" for k in parts]
              + [f"{row['speed']['device']['compute']['p99_ms']:.2f}",
                 f"{row['speed']['device']['compute']['throughput_img_s']:.1f}"]
              for row in r["rows"] if "device" in row["speed"]]
    if device:
        out += ["GPU medians from CUDA events, ms (compute: GPU kept busy, the host's enqueue excluded; end to end: "
                "copy in, enqueue, compute, copy out, as a caller sees it; enqueue: host time of the call):",
                table(device, header=["artifact", "h2d", "enqueue", "compute", "d2h", "end to end", "compute p99",
                                      "img/s (compute)"])]
    for row in r["rows"]:
        if row.get("load_ms") is not None:
            out.append(f"{row['label']}: engine load {row['load_ms']:.0f} ms"
                       + (" (TensorRT-RTX compiles for this GPU here, JIT)" if "RTX" in row["runner"] else "")
                       + (f", first inference {row['first_run_ms']:.0f} ms" if row.get("first_run_ms") else "")
                       + ": not in the latency figures")
    if r["paper_reference"]:
        p = r["paper_reference"]
        out.append(f"reference row, not measured here: the paper's {p['fps']} img/s for the {p['preset']} preset "
                   f"(full-size model) on an {p['device']}")
        if compare_paper:
            best = max(r["rows"], key=lambda row: row["speed"]["throughput_img_s"])
            fps = best["speed"]["throughput_img_s"]
            gpu = (r["machine"]["gpu"] or {}).get("gpu_name")
            where = f"{gpu} (GPU)" if gpu and best["on_gpu"] else \
                f"{r['machine']['cpu']} ({r['machine']['cores']} cores, CPU)"
            out.append(f"compare-paper: best here {fps:.2f} img/s by {best['label']} ({best['runner']}) on {where} = "
                       f"{fps / p['fps']:.3f}x the paper's {p['fps']} img/s on an {p['device']}; "
                       + ("same GPU model as the paper" if gpu and "2080 Ti" in gpu and best["on_gpu"] else
                          "a different device")
                       + f"; the paper's figure is for the full-size {p['preset']} model, "
                       + ("this artifact is that size" if r.get("paper_size") else
                          "this artifact is not that size, so this is context, not a comparison"))
    for dev in (r.get("roofline_estimate") or {}).values():
        est = ", ".join(f"{p} {v['fps_upper_bound']:.0f} ({v['bound']})" for p, v in dev.items()
                        if isinstance(v, dict))
        out.append(f"ESTIMATE, not measured: roofline upper bound on {dev['device']}: {est} img/s")
    q = r["quality"]
    if q is None:
        out.append("quality: not measured (pass --data DIR, or --lq DIR --hq DIR)")
        return "\n".join(out)
    rows = [[row["label"]]
            + (["(reference)", "(reference)"] if row["is_reference"] else
               [_ci(row["vs_float"]["psnr"]["mean"], "{:.1f}"), _ci(row["vs_float"]["psnr"]["worst_5pct"], "{:.1f}")])
            + [_ci(row["vs_gt"]["psnr"]["mean"]), _ci(row["vs_gt"]["ssim"]["mean"], "{:.3f}")] for row in r["rows"]]
    nf = q["noise_floor_vs_float"]["psnr"]["mean"]
    rows.append(["noise floor: float, other eps", _ci(nf, "{:.1f}"), _ci(q["noise_floor_vs_float"]["psnr"]["worst_5pct"], "{:.1f}"), "", ""])
    rows.append(["degraded input", "", "", _ci(q["degraded_vs_gt"]["psnr"]["mean"]), _ci(q["degraded_vs_gt"]["ssim"]["mean"], "{:.3f}")])
    out.append("")
    out.append(f"quality on {q['images']} images, means with bootstrap 95% intervals (reference: {q['reference']})")
    out.append(table(rows, header=["artifact", "PSNR vs float", "worst 5% vs float", "PSNR vs GT", "SSIM vs GT"]))
    fk = r["rows"][0].get("fid_kid_vs_gt", {})
    if fk.get("available"):
        for row in r["rows"]:
            f = row["fid_kid_vs_gt"]
            label = "biased (N < 2048), prefer KID" if f["fid_biased"] else "unbiased N"
            out.append(f"{row['label']}: FID vs GT {f['fid']:.2f} ({label}), KID {f['kid']:.4f} +- {f['kid_std']:.4f}"
                       + (f" [{f['note']}]" if "note" in f else ""))
    else:
        out.append(f"FID: unavailable ({fk.get('reason', 'not computed').replace('FID: ', '')})")
    return "\n".join(out)


def plot(report: dict, path: Path) -> None:
    """Quality vs throughput per artifact, and latency histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for r in report["rows"]:
        fps = r["speed"]["throughput_img_s"]
        if "vs_gt" in r:
            ax1.scatter(fps, r["vs_gt"]["psnr"]["mean"]["value"], s=40)
            ax1.annotate(r["label"], (fps, r["vs_gt"]["psnr"]["mean"]["value"]), fontsize=7)
        ax2.hist(r["speed"]["samples_ms"], bins=30, alpha=0.5, label=r["label"])
    ax1.set_xlabel("images / s (measured here)")
    ax1.set_ylabel("PSNR vs ground truth (dB)")
    ax1.set_title("quality vs throughput")
    ax2.set_xlabel("latency per run (ms)")
    ax2.set_title("latency distribution")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def save_json(report: dict, path: Path) -> None:
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
