"""The `elir-edge` command: a thin layer of argument parsing over the library's stages."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError
from .presets import PRESETS
from .report import human_bytes, table
from .runners import ORT_PROVIDERS

EXPORT_EXAMPLES = """examples:
  elir-edge export elir_bfr.pth                      # task read off the shapes, export/elir_bfr/
  elir-edge export last.ckpt --task sr -o export/sr  # training checkpoint, over-parameterized blocks folded
  elir-edge export elir_sr.pth --task sr --image-size 256x384 --batch 4
  elir-edge export elir_bsr.pth --noise baked --seed 7   # single-input graph, eps a constant
  elir-edge export elir_sr.pth --task sr --dynamic       # dynamic batch/height/width
"""


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="checkpoint -> folded, unrolled, verified ONNX",
                       description="Load an ELIR checkpoint (release .pth or training .ckpt), fold, unroll the K "
                                   "Euler steps, export ONNX, simplify, and verify it against PyTorch.",
                       epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="ELIR checkpoint: flat state dict or training checkpoint")
    p.add_argument("--task", choices=list(PRESETS), help="task preset for K, sigma_s and image size "
                   "(inferred when the shapes fit one preset)")
    p.add_argument("--steps", type=_positive_int, help="override K, the number of Euler steps")
    p.add_argument("--sigma", type=float, help="override sigma_s, the noise scale of the coarse estimate")
    p.add_argument("--image-size", help="override the input size: H or HxW, multiples of 32")
    p.add_argument("--batch", type=_positive_int, default=1, help="static batch size (default 1)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--noise", choices=["input", "baked"], default="input",
                   help="eps as a graph input (default) or a constant drawn from --seed")
    p.add_argument("--seed", type=int, default=0, help="seed of the verification inputs and of baked noise")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max abs error allowed vs PyTorch (default 1e-3)")
    p.add_argument("-o", "--output", type=Path, help="artifact folder (default export/<checkpoint stem>/)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from .export import ExportOptions, export_checkpoint
    from .settings import parse_image_size

    opts = ExportOptions(task=args.task, steps=args.steps, sigma=args.sigma,
                         image_size=parse_image_size(args.image_size) if args.image_size else None,
                         batch=args.batch, dynamic=args.dynamic, baked_noise=args.noise == "baked",
                         seed=args.seed, tolerance=args.tolerance, output=args.output)
    m = export_checkpoint(args.checkpoint, opts, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
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
        ["time", f"{m['seconds']:.1f} s"],
    ]
    print(table(rows, numeric=False))
    return 0


QUANTIZE_EXAMPLES = """examples:
  elir-edge quantize                                   # newest export/, calibration/ (clean photos, degraded here)
  elir-edge quantize --model export/elir_sr --calib my_photos/ --num-images 64
  elir-edge quantize --keep-float edges                # first conv, last conv and the Euler updates in float
  elir-edge quantize --auto-precision --target-psnr 40 # float for the most sensitive blocks until 40 dB
  elir-edge quantize --error-method noclipping --no-bias-correction
  elir-edge quantize --model export/elir_baked --gptq-epochs 5   # GPTQ: exports made with --noise baked
"""


def add_quantize_parser(sub) -> None:
    from .mct_ptq import ERROR_METHODS

    p = sub.add_parser("quantize", help="INT8 with Sony MCT -> TensorRT-ready Q/DQ ONNX (+ engine where possible)",
                       description="Post-training INT8 quantization of an export folder with Model Compression "
                                   "Toolkit, calibrated on real images; writes model_int8.onnx (TensorRT form: int8 "
                                   "zero point 0), model_int8_cpu.onnx (ONNX Runtime CPU form: uint8, same grid), "
                                   "quant_report.json, and model_int8.trt where TensorRT and a GPU exist.",
                       epilog=QUANTIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="export folder (default: the newest under export/)")
    p.add_argument("--calib", type=Path, default=Path("calibration"), help="folder of calibration images")
    p.add_argument("--no-degrade", dest="degrade", action="store_false",
                   help="the folder already holds degraded inputs (default: clean photos, degraded by the task)")
    p.add_argument("--num-images", type=_positive_int, help="use at most this many calibration images")
    p.add_argument("--holdout", type=int, help="calibration images kept out of PTQ to measure drift (default 1/4)")
    p.add_argument("--batch", type=_positive_int, default=2, help="calibration batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of degradations and eps")
    p.add_argument("--error-method", choices=ERROR_METHODS, default="mse", help="activation threshold search")
    p.add_argument("--no-bias-correction", dest="bias_correction", action="store_false")
    p.add_argument("--z-threshold", type=float, default=float("inf"), help="outlier removal (e.g. 8); default off")
    p.add_argument("--gptq-epochs", type=int, default=0,
                   help="> 0: gradient-based PTQ (mct.gptq); single-input (--noise baked) exports only")
    p.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                   help="module paths to keep in float, e.g. enc.layers.0, 'steps.*.final_proj'; 'edges' = "
                        "first conv, last conv and the Euler updates (repeatable)")
    p.add_argument("--auto-precision", action="store_true", help="keep blocks in float until --target-psnr")
    p.add_argument("--target-psnr", type=float, default=35.0, help="dB against the float model (default 35)")
    p.add_argument("--engine", type=Path, help="build this TensorRT engine; an error where TensorRT/GPU are missing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=run_quantize)


def run_quantize(args) -> int:
    from .mct_ptq import PTQOptions
    from .quantize import EDGE_LAYERS, QuantizeOptions, quantize_export

    keep = [p for k in args.keep_float for p in (EDGE_LAYERS if k == "edges" else [k])]
    opts = QuantizeOptions(model=args.model, calib=args.calib, degrade=args.degrade, num_images=args.num_images,
                           holdout=args.holdout, batch=args.batch, seed=args.seed,
                           ptq=PTQOptions(args.error_method, args.bias_correction, args.z_threshold, args.gptq_epochs),
                           keep_float=keep, auto_precision=args.auto_precision, target_psnr=args.target_psnr,
                           engine=args.engine)
    r = quantize_export(opts, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(quantize_table(r))
    return 0


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


RESTORE_EXAMPLES = """examples:
  elir-edge restore --engine export/elir_demo/model.onnx elir_edge/demo/heldout/chelsea_0.png -o restored/ --compare
  elir-edge restore --engine export/elir_demo/model_int8_cpu.onnx photos/ -o restored/ --tile 256 --overlap 32
  elir-edge restore --engine export/elir_bsr/model.onnx small/ -o big/       # bsr: x4 bicubic, then tiles
"""


def add_restore_parser(sub) -> None:
    p = sub.add_parser("restore", help="run an exported artifact on your images, any size",
                       description="Restore image files (or folders of them) with an exported ELIR artifact. "
                                   "Without --tile, images are resized to the graph's input (faces, as the "
                                   "reference does); with --tile (default for bsr), overlapping tiles are blended "
                                   "smoothly at the image's own size. sr/bsr inputs are upscaled x8/x4 first.",
                       epilog=RESTORE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--engine", required=True, type=Path, help="model.onnx / model_int8_cpu.onnx / .trt")
    p.add_argument("-o", "--output", required=True, type=Path, help="folder for the restored PNGs")
    p.add_argument("--task", choices=list(PRESETS), help="preprocessing preset (default: the artifact's)")
    p.add_argument("--tile", type=_positive_int, help="tile size (the graph's input size for static graphs)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of eps")
    p.add_argument("--batch", type=_positive_int, default=1, help="tiles per run")
    p.add_argument("--threads", type=_positive_int, help="ONNX Runtime threads")
    p.add_argument("--compare", action="store_true", help="also write <name>_compare.png: input | restored")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_restore)


def run_restore(args) -> int:
    import warnings

    from .restore import RestoreOptions, restore_images

    opts = RestoreOptions(output=args.output, task=args.task, tile=args.tile, overlap=args.overlap, seed=args.seed,
                          batch=args.batch, compare=args.compare, threads=args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = restore_images(args.engine, args.inputs, opts, progress=not args.quiet)
    for w in caught:
        print(f"elir-edge restore: warning: {w.message}", file=sys.stderr)
    n = len(r["restored"]) + len(r["failed"])
    print(f"restored {len(r['restored'])} of {n} image(s) into {args.output} "
          f"({'tiles of ' + str(r['tile']) if r['tile'] else 'resized to the graph input'}, task {r['task']})")
    return 0 if r["restored"] else 1


BENCH_EXAMPLES = """examples:
  elir-edge bench --engine export/elir_demo/model.onnx --engine export/elir_demo/model_int8_cpu.onnx \\
                  --data elir_edge/demo/heldout --json bench.json --plot bench.png
  elir-edge bench --engine export/elir_demo/weights.safetensors --engine export/elir_demo/model.onnx  # eager vs ONNX
  elir-edge bench --engine model.onnx --lq pairs/lq --hq pairs/hq --fid-weights pt_inception-2015-12-05.pth
"""


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed percentiles and quality drift of artifacts, side by side",
                       description="Measure every --engine in one run: latency (warm-up, then at least --iterations "
                                   "runs and --duration seconds; min/median/mean/p90/p95/p99, throughput), and, with "
                                   "--data or --lq/--hq, PSNR/SSIM against the float model and the ground truth with "
                                   "bootstrap 95% intervals, the noise floor, and FID/KID when Inception weights exist.",
                       epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", action="append", type=Path, default=[], required=True,
                   help="artifact: .onnx (ONNX Runtime), weights.safetensors of an export (PyTorch eager), "
                        ".trt/.engine/.plan (TensorRT, needs an NVIDIA GPU)")
    p.add_argument("--provider", choices=list(ORT_PROVIDERS), default="cpu",
                   help="ONNX Runtime execution provider for .onnx artifacts (cpu); cuda/tensorrt need onnxruntime-gpu")
    p.add_argument("--cuda-graph", action="store_true", help="replay TensorRT engines as CUDA graphs")
    p.add_argument("--data", type=Path, help="clean images; the task's degradation is synthesized with --seed")
    p.add_argument("--lq", type=Path, help="degraded inputs (paired with --hq by file name)")
    p.add_argument("--hq", type=Path, help="ground truth for --lq")
    p.add_argument("--task", choices=list(PRESETS), help="for an ONNX without elir-edge metadata")
    p.add_argument("--iterations", type=_positive_int, default=10, help="at least this many timed runs (10)")
    p.add_argument("--duration", type=float, default=3.0, help="and at least this many seconds (3)")
    p.add_argument("--warmup", type=float, default=0.2, help="warm-up seconds (0.2)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads (default: the runtime's)")
    p.add_argument("--seed", type=int, default=0, help="seed of degradations and eps")
    p.add_argument("--fid-weights", type=Path, help="torch-fidelity's Inception weights file (FID/KID)")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--plot", type=Path, help="write quality-vs-throughput and latency histograms as PNG")
    p.add_argument("--compare-paper", action="store_true", help="say how the measured device relates to the paper's")
    p.add_argument("--roofline", action="append", default=[], metavar="DEVICE",
                   help="on-paper FPS estimate for a GPU of elir_edge/data/devices.json (rtx2080ti, "
                        "orin-agx-64gb) or 'all'; needs the artifact's export folder")
    p.set_defaults(run=run_bench)


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
    where = f" and {gpu['gpu_name']} (TensorRT {gpu['tensorrt']}, CUDA driver {gpu['gpu_cuda_driver']})" \
        if "gpu_name" in gpu else ""
    out = [f"{r['task']} {r['image_size']} on {r['machine']['cpu']}{where}, threads {r['threads'] or 'default'}",
           "host wall clock per run:", table(speed, header=header)]
    device = [[row["label"]] + [f"{row['speed']['device'][k][m]:.2f}" for k in ("compute", "end_to_end")
                                for m in ("median_ms", "p99_ms")]
              + [f"{row['speed']['device']['compute']['throughput_img_s']:.1f}"]
              for row in r["rows"] if "device" in row["speed"]]
    if device:
        out += ["GPU time from CUDA events (compute only; end to end with pinned host<->device copies):",
                table(device, header=["artifact", "compute median ms", "p99", "end-to-end median ms", "p99",
                                      "img/s (compute)"])]
    if r["paper_reference"]:
        p = r["paper_reference"]
        out.append(f"reference row, not measured here: the paper's {p['fps']} img/s for the {p['preset']} preset "
                   f"(full-size model) on an {p['device']}")
        if compare_paper:
            best = max(row["speed"]["throughput_img_s"] for row in r["rows"])
            out.append(f"compare-paper: measured on {r['machine']['cpu']} ({r['machine']['cores']} cores, no GPU) "
                       f"with {r['rows'][0]['runner']}; the paper measured a GPU. Best here {best:.2f} img/s = "
                       f"{best / p['fps']:.3f}x the paper's figure: different device, and this artifact may not be "
                       "the paper's model size, so this is context, not a comparison")
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
            out.append(f"{row['label']}: FID vs GT {f['fid']:.2f} ({label}), KID {f['kid']:.4f} +- {f['kid_std']:.4f}")
    else:
        out.append(f"FID: unavailable ({fk.get('reason', 'not computed').replace('FID: ', '')})")
    return "\n".join(out)


def run_bench(args) -> int:
    from .bench import BenchOptions, run_bench as bench, save_json

    opts = BenchOptions(engines=args.engine, data=args.data, lq=args.lq, hq=args.hq, task=args.task,
                        iterations=args.iterations, duration=args.duration, warmup=args.warmup,
                        threads=args.threads, provider=args.provider, cuda_graph=args.cuda_graph, seed=args.seed,
                        fid_weights=args.fid_weights, plot=args.plot, roofline=args.roofline)
    r = bench(opts)
    print(bench_tables(r, args.compare_paper))
    if args.json:
        save_json(r, args.json)
        print(f"json: {args.json}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the bundled trained model",
                       description="Export and INT8-quantize the bundled demo ELIR (trained here on public-domain "
                                   "photos), bench float vs int8 on its held-out images, write a before/after strip, "
                                   "a plot and a report.")
    p.add_argument("-o", "--output", type=Path, default=Path("export") / "elir_demo", help="artifact folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradations and of eps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from .demo.run import run_demo as demo

    r = demo(args.output, args.seed, args.quiet)
    q = r["quantize"]
    print(bench_tables(r["bench"]))
    print(f"\nint8 file {q['size_ratio']:.2f}x the float one; TensorRT engine: "
          + (q["engine"]["engine"] if q["engine"]["built"] else "not built: " + q["engine"]["reason"]))
    print(f"strip: {r['strip']}\nplot: {r['plot']}\nreport: {Path(r['export']) / 'demo_report.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elir-edge", description="ELIR from checkpoint to edge artifact, "
                                     "with measured speed and quality.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
    add_quantize_parser(sub)
    add_restore_parser(sub)
    add_bench_parser(sub)
    add_demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as e:
        print(f"elir-edge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"elir-edge {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
