"""The bench report for people (tables, plot) and for programs (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from elir_edge.common.files import atomic_file
from elir_edge.common.images import SOFTWARE
from elir_edge.common.tables import table


def _ci(d: dict, fmt: str = "{:.2f}") -> str:
    lo, hi = d["ci95"]
    return f"{fmt.format(d['value'])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def bench_tables(r: dict, compare_paper: bool = False) -> str:
    """The whole report for people: speed, GPU breakdown, CPU roof, flags, paper reference, quality."""
    out = _speed_lines(r) + _engine_lines(r) + _paper_lines(r, compare_paper)
    return "\n".join(out + _quality_lines(r))


def _speed_lines(r: dict) -> list[str]:
    roofed = any("roof" in row for row in r["rows"])
    speed = [[row["label"], row["runner"], str(row["speed"]["batch"])]
             + [f"{row['speed'][k]:.1f}" for k in ("min_ms", "median_ms", "mean_ms", "p90_ms", "p95_ms", "p99_ms")]
             + [f"{row['speed']['throughput_img_s']:.2f}", f"{row['speed']['ratio_vs_first']:.2f}x"]
             + ([f"{row['roof']['percent']:.0f}% {row['roof']['of']}" if "roof" in row else ""] if roofed else [])
             for row in r["rows"]]
    header = ["artifact", "runner", "batch", "min ms", "median", "mean", "p90", "p95", "p99", "img/s", "speed"] \
        + (["of ORT conv roof"] if roofed else [])
    gpu = r["machine"]["gpu"] or {}
    runtimes = ", ".join(f"{k.replace('_', '-')} {gpu[k]}" for k in ("tensorrt", "tensorrt_rtx") if k in gpu)
    where = f" and {gpu['gpu_name']} (CUDA driver {gpu['gpu_cuda_driver']}{', ' + runtimes if runtimes else ''})" \
        if "gpu_name" in gpu else ""
    feats = r["machine"].get("cpu_features", {}).get("features")
    out = [f"{r['task']} {r['image_size']} on {r['machine']['cpu']} ({', '.join(feats) if feats else 'no SIMD flags read'})"
           f"{where}, threads {r['threads'] or 'default'}",
           "host wall clock per run (artifacts taking turns; img/s: one inference at a time, batch / median, "
           "no second one in flight):", table(speed, header=header)]
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
    out += [f"HOST-BOUND {row['label']}: {row['speed']['host_bound']}" for row in r["rows"]
            if "host_bound" in row["speed"]]
    return out


def _engine_lines(r: dict) -> list[str]:
    """This CPU's roof and verdict, rows flagged as computed wrongly here, engine load times."""
    out = []
    roof = r.get("cpu_roof")
    if roof:
        shapes = ", ".join(f"{s['in']}->{s['out']}@{s['h']}px" for s in roof["shapes"])
        out.append(f"CPU roof: ONNX Runtime's own conv speed ({roof['threads'] or 'default'} threads, the model's main 3x3 convs "
                   f"{shapes}): fp32 {roof['fp32_gmac_s']:.1f} GMAC/s, int8 {roof['int8_gmac_s']:.1f} GMAC/s, "
                   f"int8:fp32 {roof['int8_vs_fp32']:.2f}x")
        out.append(roof["verdict"])
    out += [f"FLAGGED {row['label']} on {row['runner']}: {row['flag']}" for row in r["rows"] if row.get("flag")]
    for row in r["rows"]:
        if "layers" in row:
            out.append(f"{row['label']}: layers by precision (TensorRT's engine inspector): {row['layers']['summary']}")
        if row.get("no_int8_kernels"):
            out.append(f"NO INT8 KERNELS {row['label']}: {row['no_int8_kernels']}")
        if row.get("load_ms") is not None:
            out.append(f"{row['label']}: engine load {row['load_ms']:.0f} ms"
                       + (" (TensorRT-RTX compiles for this GPU here, JIT)" if "RTX" in row["runner"] else "")
                       + (f", CUDA context {row['context_ms']:.0f} ms before it"
                          if (row.get("context_ms") or 0) >= 1 else "")
                       + (f", first inference {row['first_run_ms']:.0f} ms" if row.get("first_run_ms") else "")
                       + ": not in the latency figures")
    return out


def _paper_lines(r: dict, compare_paper: bool) -> list[str]:
    out = []
    if r["paper_reference"]:
        p = r["paper_reference"]
        out.append(f"reference row, not measured here: the paper's {p['fps']} img/s for the {p['preset']} preset "
                   f"(full-size model) on an {p['device']}")
        if compare_paper:
            best = max(r["rows"], key=lambda row: row["speed"]["throughput_img_s"])
            fps = best["speed"]["throughput_img_s"]
            gpu = (r["machine"]["gpu"] or {}).get("gpu_name")
            where = f"{gpu} (GPU)" if gpu and best["on_gpu"] else \
                f"{r['machine']['cpu']} ({_cores(r['machine'])}, CPU)"
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
    return out


def _cores(machine: dict) -> str:
    """The cores the bench ran on, and the machine's where it had fewer (a cpuset, taskset); reports from before
    the machine's count was kept say only one."""
    cores, of = machine["cores"], machine.get("machine_cores")
    return f"{cores} of {of} cores" if of and of != cores else f"{cores} cores"


def _quality_lines(r: dict) -> list[str]:
    q = r["quality"]
    if q is None:
        return ["quality: not measured (pass --data DIR, or --lq DIR --hq DIR)"]
    out = []
    labels = [row["label"] for row in r["rows"]]
    rows = [[row["label"] + (f" [{row['runner']}]" if labels.count(row["label"]) > 1 else "")]
            + (["(reference)", "(reference)"] if row["is_reference"] else
               [_ci(row["vs_float"]["psnr"]["mean"], "{:.1f}"), _ci(row["vs_float"]["psnr"]["worst_5pct"], "{:.1f}")])
            + [_ci(row["vs_gt"]["psnr"]["mean"]), _ci(row["vs_gt"]["ssim"]["mean"], "{:.3f}")] for row in r["rows"]]
    nf = q["noise_floor_vs_float"]["psnr"]["mean"]
    rows.append(["noise floor: float, other eps", _ci(nf, "{:.1f}"), _ci(q["noise_floor_vs_float"]["psnr"]["worst_5pct"], "{:.1f}"), "", ""])
    rows.append(["degraded input", "", "", _ci(q["degraded_vs_gt"]["psnr"]["mean"]), _ci(q["degraded_vs_gt"]["ssim"]["mean"], "{:.3f}")])
    out.append("")
    out.append(f"quality on {q['images']} images, means with bootstrap 95% intervals (reference: {q['reference']})")
    if q.get("failed"):
        why = "; ".join(f"{n} x {reason}" for reason, n in q.get("failures", {}).items())
        out.append(f"  {len(q['failed'])} image(s) not scored, not counted (e.g. {q['failed'][0]}): {why}")
    if q.get("where", "this process") != "this process":
        out.append(f"  quality pass on the {q['where']}: {q['images_per_s']:.2f} img/s over the cluster (the speed "
                   "figures above were measured here, on one device)")
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
    return out


MIN_SPAN_DB = 3.0  # a y axis spans at least this much, so a 0.1 dB difference does not fill the plot
HISTOGRAM_RUNS = 50  # fewer runs than this are drawn one by one, not binned


def _span(ax, values: list[float]) -> None:
    lo, hi = min(values), max(values)
    mid, half = (lo + hi) / 2, max((hi - lo) / 2 * 1.2, MIN_SPAN_DB / 2)
    ax.set_ylim(mid - half, mid + half)


IDENTICAL_DB = 100.0  # drift above this is float rounding: drawn at the top edge, not to scale


def plot(report: dict, path: Path) -> None:
    """Drift vs throughput (with the noise floor), ground-truth quality vs throughput (with the float
    reference and the degraded input), and every timed run's latency; one colour per row throughout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = report["quality"]
    fig, axes = plt.subplots(1, 3 if q else 1, figsize=(16 if q else 7, 4.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    _latency_panel(axes[0][-1], report, colors)
    if q:
        _quality_panels(axes[0][0], axes[0][1], report, colors)
    fig.tight_layout()
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": SOFTWARE})  # ours: may be replaced later
    plt.close(fig)


def _latency_panel(lat, report: dict, colors: list) -> None:
    many = any(len(r["speed"]["samples_ms"]) >= HISTOGRAM_RUNS for r in report["rows"])
    for i, r in enumerate(report["rows"]):
        ms = np.asarray(r["speed"]["samples_ms"])
        c, label = colors[i % len(colors)], f"{r['label']} ({r['runner']})" + (" FLAGGED" if r.get("flag") else "")
        if many:
            lat.hist(ms, bins=30, alpha=0.5, color=c, label=label)
        else:  # a strip of the individual runs
            lat.scatter(ms, i + np.random.default_rng(i).uniform(-0.2, 0.2, len(ms)), s=12, color=c, label=label)
    lat.set_xlabel("latency per run (ms)")
    lat.set_title(f"latency of every timed run{'' if many else ' (one dot each)'}")
    if not many:
        lat.set_yticks([])
    lat.legend(fontsize=6, loc="best")


def _quality_panels(drift, gt, report: dict, colors: list) -> None:
    q = report["quality"]
    floor = q["noise_floor_vs_float"]["psnr"]["mean"]["value"]
    ref_gt = next((r["vs_gt"]["psnr"]["mean"]["value"] for r in report["rows"] if r.get("is_reference")), None)
    degraded = q["degraded_vs_gt"]["psnr"]["mean"]["value"]
    drifts = [r["vs_float"]["psnr"]["mean"] for r in report["rows"] if "vs_float" in r]
    _span(drift, [floor] + [y for d in drifts for y in d["ci95"] if y < IDENTICAL_DB])
    top = drift.get_ylim()[1]
    ys_gt = [degraded] + ([ref_gt] if ref_gt is not None else [])
    for i, r in enumerate(report["rows"]):
        fps, c = r["speed"]["throughput_img_s"], colors[i % len(colors)]
        g = r["vs_gt"]["psnr"]["mean"]
        gt.errorbar(fps, g["value"], yerr=[[g["value"] - g["ci95"][0]], [g["ci95"][1] - g["value"]]], fmt="o",
                    capsize=3, color=c)
        ys_gt += list(g["ci95"])
        if "vs_float" in r:
            d = r["vs_float"]["psnr"]["mean"]
            if d["value"] >= IDENTICAL_DB:
                drift.scatter(fps, top, marker="^", color=c, clip_on=False)
            else:
                drift.errorbar(fps, d["value"], yerr=[[d["value"] - d["ci95"][0]], [d["ci95"][1] - d["value"]]],
                               fmt="o", capsize=3, color=c, mec="red" if r.get("flag") else c)
    drift.axhline(floor, ls="--", color="gray", label="noise floor: float vs float, other eps")
    drift.set_ylabel("PSNR vs the float model (dB), higher = closer")
    drift.set_title(f"drift from float (triangles at the top: >= {IDENTICAL_DB:.0f} dB, identical)", fontsize=9)
    drift.legend(fontsize=7)
    if ref_gt is not None:
        gt.axhline(ref_gt, color="black", lw=1, label="float reference")
    gt.axhline(degraded, ls=":", color="gray", label="degraded input")
    _span(gt, ys_gt)
    gt.set_ylabel("PSNR vs ground truth (dB), 95% intervals")
    gt.set_title("restoration quality vs throughput", fontsize=9)
    gt.legend(fontsize=7)
    for ax in (drift, gt):
        ax.set_xlabel("images / s (measured here)")


def save_json(report: dict, path: Path) -> None:
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")


def is_our_report(path: Path) -> bool:
    """A bench report this tool wrote (its machine record names the elir-edge version)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and isinstance(report.get("machine"), dict) and "elir_edge" in report["machine"]
