"""The `elir-edge` command: a thin layer of argument parsing over the library's stages."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from elir_edge.errors import InternalError, UserError
from elir_edge.model.presets import PRESETS
from elir_edge.model.settings import parse_image_size
from elir_edge.bench.options import BenchOptions
from elir_edge.exporter.options import ExportOptions
from elir_edge.quantize.options import CPU_TARGETS, ERROR_METHODS, PTQOptions, QuantizeOptions
from elir_edge.runtime.open import RUNTIMES
from elir_edge.runtime.ort import ORT_PROVIDERS

# The parsers are built without torch, MCT, onnx or onnxruntime, so --help and argument errors answer at once
# (tests/test_cli_errors.py checks which modules they load); each command imports its stage when it runs.

EXPORT_EXAMPLES = """examples:
  elir-edge export elir_bfr.pth                      # task read off the shapes, export/elir_bfr/
  elir-edge export last.ckpt --task sr -o export/sr  # training checkpoint, over-parameterized blocks folded
  elir-edge export elir_sr.pth --task sr --image-size 256x384 --batch 4
  elir-edge export elir_bsr.pth --noise baked --seed 7   # single-input graph, eps a constant
  elir-edge export elir_sr.pth --task sr --dynamic       # dynamic batch/height/width
"""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem, and where the usage is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, lowest, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value != value or value < lowest:  # NaN, or too small
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    return parse


def _image_size(text: str) -> tuple[int, int]:
    try:
        return parse_image_size(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_positive_int = _number(int, 1, "1 or more")
_non_negative_int = _number(int, 0, "0 or more")
_non_negative_float = _number(float, 0.0, "0 or more")
_positive_float = _number(float, 1e-300, "more than 0")


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
    p.add_argument("--image-size", type=_image_size, help="override the input size: H or HxW, multiples of 32")
    p.add_argument("--batch", type=_positive_int, default=1, help="static batch size (default 1)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--noise", choices=["input", "baked"], default="input",
                   help="eps as a graph input (default) or a constant drawn from --seed")
    p.add_argument("--seed", type=int, default=0, help="seed of the verification inputs and of baked noise")
    p.add_argument("--tolerance", type=_positive_float, default=ExportOptions.tolerance,
                   help=f"max abs error allowed vs PyTorch (default {ExportOptions.tolerance:g})")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="do not write model_fp16.onnx")
    p.add_argument("-o", "--output", type=Path, help="artifact folder (default export/<checkpoint stem>/)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of the table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from elir_edge.exporter.report import export_table
    from elir_edge.exporter.stage import export_checkpoint
    opts = ExportOptions(task=args.task, steps=args.steps, sigma=args.sigma, image_size=args.image_size,
                         batch=args.batch, dynamic=args.dynamic, baked_noise=args.noise == "baked",
                         seed=args.seed, tolerance=args.tolerance, output=args.output, fp16=args.fp16)
    m = export_checkpoint(args.checkpoint, opts, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(export_table(m))
    return 0


QUANTIZE_EXAMPLES = """examples:
  elir-edge quantize                                   # newest export/, calibration/ (clean photos, degraded here)
  elir-edge quantize --model export/elir_sr --calib my_photos/ --num-images 64
  elir-edge quantize --keep-float edges                # first conv, last conv and the Euler updates in float
  elir-edge quantize --runtime ort                     # check the CPU files on ONNX Runtime only (no OpenVINO)
  elir-edge quantize --auto-precision --target-psnr 40 # float for the most sensitive blocks until 40 dB
  elir-edge quantize --error-method noclipping --no-bias-correction
  elir-edge quantize --model export/elir_baked --gptq-epochs 5   # GPTQ: exports made with --noise baked
"""


def add_quantize_parser(sub) -> None:
    p = sub.add_parser("quantize", help="INT8 with Sony MCT -> Q/DQ ONNX for TensorRT and the CPU (+ RTX engine)",
                       description="Post-training INT8 quantization of an export folder with Model Compression "
                                   "Toolkit, calibrated on real images; writes model_int8.onnx (TensorRT form: int8 "
                                   "zero point 0), model_int8_fp16.onnx (the same, float parts fp16), "
                                   "model_int8_cpu.onnx (CPU form: uint8, same grid, 7-bit weights for any x86 CPU), "
                                   "model_int8_cpu_w8.onnx (the same with 8-bit weights, for CPUs with VNNI/AMX), "
                                   "model_int8_cpu_s8.onnx (OpenVINO form: int8 with no zero points, 8-bit weights), "
                                   "quant_report.json, "
                                   "int8_probe.safetensors (the input each CPU runtime is checked on), and then the "
                                   "RTX 2080 Ti's TensorRT-RTX engine of model_fp16.onnx (FP16 is what NVIDIA lists "
                                   "for Turing) where tensorrt-rtx is installed (no GPU needed).",
                       epilog=QUANTIZE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="export folder (default: the newest under export/)")
    p.add_argument("--calib", type=Path, help="folder of calibration images (default: ./calibration where it "
                   "exists, else the photographs bundled with elir-edge)")
    p.add_argument("--no-degrade", dest="degrade", action="store_false",
                   help="the folder already holds degraded inputs (default: clean photos, degraded by the task)")
    p.add_argument("--num-images", type=_positive_int, help="use at most this many calibration images")
    p.add_argument("--holdout", type=_non_negative_int, help="calibration images kept out of PTQ to measure drift (default 1/4)")
    p.add_argument("--batch", type=_positive_int, default=QuantizeOptions.batch, help="calibration batch size")
    p.add_argument("--seed", type=int, default=QuantizeOptions.seed, help="seed of degradations and eps")
    p.add_argument("--error-method", choices=ERROR_METHODS, default=PTQOptions.error_method,
                   help="activation threshold search")
    p.add_argument("--weights-error-method", choices=ERROR_METHODS, default=PTQOptions.weights_error_method,
                   help=f"per-channel weight threshold search (default {PTQOptions.weights_error_method})")
    p.add_argument("--sensitivity-images", type=_positive_int,
                   help="held-out images for the per-block sensitivity (default: 2 at 256 px, 1 at 512 px)")
    p.add_argument("--calib-size", type=_positive_int, help="side of the crops MCT calibrates on, a multiple of 32 "
                   "(default: the graph's size, at most 256: the model is fully convolutional)")
    p.add_argument("--memory-limit", type=_positive_float, metavar="GB",
                   help="refuse before MCT runs if the memory estimate exceeds this (default: available memory)")
    p.add_argument("--cpu", choices=CPU_TARGETS, default=QuantizeOptions.cpu,
                   help="the CPU the int8 CPU file is for: vnni (8-bit weights: VNNI/AMX), avx2 (7-bit weights: "
                        "no VNNI), auto (this CPU, by its features and the runtimes' check here); the report names it")
    p.add_argument("--runtime", dest="runtimes", action="append", choices=RUNTIMES,
                   help="CPU runtime to check the int8 CPU files on, repeatable (default: every installed one; "
                        "each costs seconds a file, OpenVINO's compile most)")
    p.add_argument("--no-bias-correction", dest="bias_correction", action="store_false")
    p.add_argument("--z-threshold", type=_positive_float, default=PTQOptions.z_threshold,
                   help="outlier removal (e.g. 8); default off")
    p.add_argument("--gptq-epochs", type=_non_negative_int, default=PTQOptions.gptq_epochs,
                   help="> 0: gradient-based PTQ (mct.gptq); single-input (--noise baked) exports only")
    p.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                   help="module paths to keep in float, e.g. enc.layers.0, 'steps.*.final_proj'; 'edges' = "
                        "first conv, last conv and the Euler updates (repeatable)")
    p.add_argument("--auto-precision", action="store_true", help="keep blocks in float until --target-psnr")
    p.add_argument("--target-psnr", type=float, default=QuantizeOptions.target_psnr,
                   help=f"dB against the float model (default {QuantizeOptions.target_psnr:g})")
    p.add_argument("--rtx-engine", "--engine", dest="rtx_engine", type=Path,
                   help="path of the TensorRT-RTX engine of model_fp16.onnx (default model_fp16.rtx.engine beside it); "
                        "given explicitly, a missing tensorrt-rtx is an error")
    p.add_argument("--sm", action="append", metavar="CC",
                   help="compute capability of that engine, repeatable (default 75 = RTX 2080 Ti)")
    p.add_argument("--no-engine", dest="build_engine", action="store_false", help="build no engine")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=run_quantize)


def run_quantize(args) -> int:
    """quantize_export, then the folder's RTX 2080 Ti engine from the engines stage (its output path checked
    before the long work)."""
    from elir_edge.engines import turing_engine
    from elir_edge.engines.report import engine_line
    from elir_edge.engines.stage import engine_output
    from elir_edge.model.export_folder import FP16, RTX_ENGINE, ExportFolder
    from elir_edge.quantize.options import EDGE_LAYERS
    from elir_edge.quantize.report import quantize_table
    from elir_edge.quantize.stage import quantize_export

    folder = ExportFolder(args.model) if args.model is not None else ExportFolder.newest()
    asked = args.rtx_engine is not None  # an explicit path asks for the engine, --no-engine or not
    build = args.build_engine or asked
    if build:
        engine_output(folder / FP16, args.rtx_engine or folder / RTX_ENGINE, what="--rtx-engine")
    if asked:  # its builder must be here, before any work
        from elir_edge.engines.rtx import import_rtx

        import_rtx()
    keep = [p for k in args.keep_float for p in (EDGE_LAYERS if k == "edges" else [k])]
    opts = QuantizeOptions(model=folder.path, calib=args.calib, degrade=args.degrade, num_images=args.num_images,
                           holdout=args.holdout, batch=args.batch, seed=args.seed,
                           ptq=PTQOptions(args.error_method, args.weights_error_method, args.bias_correction,
                                          args.z_threshold, args.gptq_epochs),
                           sensitivity_images=args.sensitivity_images, calib_size=args.calib_size,
                           memory_limit_gb=args.memory_limit, cpu=args.cpu, runtimes=args.runtimes,
                           keep_float=keep, auto_precision=args.auto_precision, target_psnr=args.target_psnr)
    quiet = args.quiet or args.json
    r = quantize_export(opts, quiet=quiet)
    r["engine"] = turing_engine(folder, args.sm, args.rtx_engine, required=asked, quiet=quiet) if build else \
        {"built": False, "reason": "not asked (--no-engine)"}
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(quantize_table(r))
    print(f"RTX 2080 Ti engine: {engine_line(r['engine'])}")
    return 0


RESTORE_EXAMPLES = """examples:
  elir-edge restore export/elir_demo/model.onnx elir_edge/demo/heldout/chelsea_0.png -o restored/ --compare
  elir-edge restore export/elir_demo/model_int8_cpu.onnx photos/ -o restored/ --tile 256 --overlap 32
  elir-edge restore export/elir_demo photos/ -o restored/ --workers 2 --threads 1   # two images at a time
  elir-edge restore export/elir_bsr/model.onnx small/ -o big/       # bsr: x4 bicubic, then tiles
"""


def add_restore_parser(sub) -> None:
    p = sub.add_parser("restore", help="run an exported artifact on your images, any size",
                       description="Restore image files (or folders of them) with an exported ELIR artifact. "
                                   "Without --tile, images are resized to the graph's input (faces, as the "
                                   "reference does); with --tile (default for bsr), overlapping tiles are blended "
                                   "smoothly at the image's own size. sr/bsr inputs are upscaled x8/x4 first.",
                       epilog=RESTORE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="[ARTIFACT] INPUT",
                   help="the artifact (model.onnx, model_int8_cpu.onnx, an engine, weights.safetensors), then image "
                        "files or folders; with --engine, all are inputs")
    p.add_argument("--engine", type=Path, help="the artifact, when not given first")
    p.add_argument("-o", "--output", required=True, type=Path, help="folder for the restored PNGs")
    p.add_argument("--task", choices=list(PRESETS), help="preprocessing preset (default: the artifact's)")
    p.add_argument("--tile", type=_positive_int, help="tile size (the graph's input size for static graphs)")
    p.add_argument("--overlap", type=_non_negative_int, default=32, help="tile overlap in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of eps")
    p.add_argument("--batch", type=_positive_int, default=1, help="tiles per run")
    p.add_argument("--threads", type=_positive_int, help="CPU threads of the runtime (of each worker)")
    p.add_argument("--workers", type=_positive_int, default=1, help="images restored side by side in this process, "
                   "each by its own runner of the file (ONNX Runtime CPU files; default 1; threads each: the "
                   "cores / workers unless --threads)")
    p.add_argument("--runtime", choices=RUNTIMES, default="ort", help=".onnx artifacts: ONNX Runtime "
                   "(default) or OpenVINO")
    p.add_argument("--compare", action="store_true", help="also write <name>_compare.png: input | restored")
    p.add_argument("--resume", action="store_true", help="skip inputs whose output exists, was written by "
                   "elir-edge from the same input, artifact and settings")
    p.add_argument("--report", type=Path, help="per-image report, JSON lines (path, status, ms, output)")
    add_ray_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_restore)


def add_ray_arguments(p) -> None:
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the per-image work on a Ray cluster: alone, a Ray started here; `auto` or "
                        "ray://host:port, that cluster (needs elir-edge[ray]; paths must be on storage every node sees)")
    p.add_argument("--actors", type=_positive_int, help="with --ray: workers (default: the cluster's CPUs / "
                   "--threads, or one per GPU for engines)")


def _say_now(command: str):
    """A warnings.showwarning for a long run: each warning (a skipped image, a node left out) one line as it
    happens, above the progress bar, not kept until the end (a run of millions of images may have many)."""
    def show(message, category, filename, lineno, file=None, line=None):
        from tqdm import tqdm

        tqdm.write(f"elir-edge {command}: warning: {message}", file=sys.stderr)
    return show


def run_restore(args) -> int:
    import warnings

    from elir_edge.restore.stage import RestoreOptions, restore_images

    opts = RestoreOptions(output=args.output, task=args.task, tile=args.tile, overlap=args.overlap, seed=args.seed,
                          batch=args.batch, compare=args.compare, threads=args.threads, runtime=args.runtime,
                          resume=args.resume, report=args.report, ray=args.ray, actors=args.actors,
                          workers=args.workers)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)  # libraries' notes to their own developers (Ray's)
        warnings.showwarning = _say_now("restore")
        artifact, inputs = (args.engine, args.inputs) if args.engine else (args.inputs[0], args.inputs[1:])
        if not inputs:
            raise UserError("no images given: `elir-edge restore ARTIFACT IMAGES... -o DIR`")
        r = restore_images(artifact, inputs, opts, progress=not args.quiet)
    if r["chosen"]:
        print(r["chosen"])
    kept = f"; {r['skipped_existing']} already restored, kept (--resume)" if r["skipped_existing"] else ""
    rate = f", {r['images_per_s']:.2f} img/s" if r["images_per_s"] else ""
    print(f"restored {r['restored']} of {r['inputs']} image(s) into {args.output} "
          f"({'tiles of ' + str(r['tile']) if r['tile'] else 'resized to the graph input'}, task {r['task']}, "
          f"{r['where']}{rate}){kept}")
    return 0 if r["restored"] or r["skipped_existing"] else 1


BENCH_EXAMPLES = """examples:
  elir-edge bench export/elir_demo/model.onnx export/elir_demo/model_int8_cpu.onnx \\
                  --data elir_edge/demo/heldout --json bench.json --plot bench.png
  elir-edge bench export/elir_demo/weights.safetensors export/elir_demo/model.onnx  # eager vs ONNX
  elir-edge bench model.onnx --lq pairs/lq --hq pairs/hq --fid-weights pt_inception-2015-12-05.pth
"""


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed percentiles and quality drift of artifacts, side by side",
                       description="Measure every --engine in one run: latency (warm-up, then at least --iterations "
                                   "runs and --duration seconds; min/median/mean/p90/p95/p99, throughput), and, with "
                                   "--data or --lq/--hq, PSNR/SSIM against the float model and the ground truth with "
                                   "bootstrap 95% intervals, the noise floor, and FID/KID when Inception weights exist.",
                       epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifacts", nargs="*", type=Path, metavar="ARTIFACT",
                   help="artifacts: .onnx (ONNX Runtime), weights.safetensors of an export (PyTorch eager), "
                        ".trt/.engine/.plan (TensorRT, needs an NVIDIA GPU)")
    p.add_argument("--engine", action="append", type=Path, default=[], help="an artifact (repeatable), as above")
    p.add_argument("--provider", choices=list(ORT_PROVIDERS), default="cpu",
                   help="ONNX Runtime execution provider for .onnx artifacts (cpu); cuda/tensorrt need onnxruntime-gpu")
    p.add_argument("--cuda-graph", action="store_true", help="replay engines (and PyTorch on CUDA) as CUDA graphs")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="weights.safetensors: run the looped PyTorch model on the CPU or an NVIDIA GPU (the paper's way)")
    p.add_argument("--half", action="store_true", help="with --device cuda: PyTorch in fp16")
    p.add_argument("--runtime", action="append", choices=RUNTIMES,
                   help="runtime for .onnx artifacts, repeatable: every .onnx runs on each (default ort)")
    p.add_argument("--no-roof", dest="cpu_roof", action="store_false",
                   help="skip measuring this CPU's conv roof (a few seconds)")
    p.add_argument("--data", type=Path, help="clean images; the task's degradation is synthesized with --seed")
    p.add_argument("--lq", type=Path, help="degraded inputs (paired with --hq by file name)")
    p.add_argument("--hq", type=Path, help="ground truth for --lq")
    p.add_argument("--task", choices=list(PRESETS), help="for an ONNX without elir-edge metadata")
    p.add_argument("--iterations", type=_positive_int, default=BenchOptions.iterations,
                   help=f"at least this many timed runs ({BenchOptions.iterations})")
    p.add_argument("--duration", type=_non_negative_float, default=BenchOptions.duration,
                   help=f"and at least this many seconds ({BenchOptions.duration:g})")
    p.add_argument("--warmup", type=_non_negative_float, default=BenchOptions.warmup,
                   help=f"warm-up seconds ({BenchOptions.warmup:g})")
    p.add_argument("--threads", type=_positive_int, help="CPU threads (default: the runtime's)")
    p.add_argument("--seed", type=int, default=0, help="seed of degradations and eps")
    p.add_argument("--fid-weights", type=Path, help="torch-fidelity's Inception weights file (FID/KID)")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--plot", type=Path, help="write quality-vs-throughput and latency histograms as PNG")
    p.add_argument("--compare-paper", action="store_true", help="say how the measured device relates to the paper's")
    p.add_argument("--roofline", action="append", default=[], metavar="DEVICE",
                   help="on-paper FPS estimate for a GPU of elir_edge/data/devices.json (rtx2080ti, "
                        "orin-agx-64gb) or 'all'; needs the artifact's export folder")
    p.add_argument("--report", type=Path, help="per-image quality rows, JSON lines (path, status, ms, figures)")
    add_ray_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_bench)


def run_bench(args) -> int:
    if not args.artifacts + args.engine:  # a usage error: answered before the stage (torch, runtimes) loads
        raise UserError("no artifact given: `elir-edge bench model.onnx [model_int8_cpu.onnx ...]`")
    from elir_edge.bench.report import bench_tables, save_json
    from elir_edge.bench.stage import run_bench as bench

    opts = BenchOptions(engines=args.artifacts + args.engine, data=args.data, lq=args.lq, hq=args.hq, task=args.task,
                        iterations=args.iterations, duration=args.duration, warmup=args.warmup,
                        threads=args.threads, provider=args.provider, cuda_graph=args.cuda_graph, device=args.device,
                        half=args.half, seed=args.seed,
                        fid_weights=args.fid_weights, plot=args.plot, json=args.json, roofline=args.roofline,
                        cpu_roof=args.cpu_roof, runtimes=args.runtime or ["ort"], report=args.report, ray=args.ray,
                        actors=args.actors, progress=not args.quiet)
    r = bench(opts)
    print("\n".join([*r["chosen"], bench_tables(r, args.compare_paper)]))
    if args.json:
        save_json(r, args.json)
        print(f"json: {args.json}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


BUILD_EXAMPLES = """examples:
  elir-edge build export/elir_demo/model_int8_fp16.onnx            # TensorRT-RTX engine for the RTX 2080 Ti (SM75)
  elir-edge build export/elir_demo/model_fp16.onnx --sm 75 --sm 86 # one plan for Turing and Ampere RTX cards
  elir-edge build export/elir_sr/model.onnx --profile 1x64x64 1x256x256 4x512x512   # a --dynamic export
  elir-edge build export/elir_demo/model_int8.onnx --target tensorrt              # TensorRT, on the GPU itself
"""


def add_build_parser(sub) -> None:
    p = sub.add_parser("build", help="ONNX -> NVIDIA engine (TensorRT-RTX ahead of time, or TensorRT on its GPU)",
                       description="Build engines from graphs written by export/quantize with NVIDIA's own parser "
                                   "and builder. --target rtx (default) needs no GPU: it compiles for the chosen "
                                   "compute capabilities and the plan finishes compiling on the RTX GPU at first "
                                   "load. Precision is the graph's own (strongly typed): build model_fp16.onnx or "
                                   "model_int8_fp16.onnx for the 16-bit paths.",
                       epilog=BUILD_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", nargs="+", type=Path, help="ONNX graph(s): model.onnx, model_fp16.onnx, model_int8*.onnx")
    p.add_argument("--target", choices=["rtx", "tensorrt"], default="rtx", help="builder (default rtx)")
    p.add_argument("--sm", action="append", metavar="CC",
                   help="rtx: compute capability to build for, repeatable (default 75 = RTX 2080 Ti)")
    p.add_argument("--profile", nargs=3, metavar="BxHxW", help="dynamic graphs: min, opt and max input shapes "
                   "(default 1x32x32, the export's size, 4x twice that)")
    p.add_argument("-o", "--output", type=Path, help="engine path (one graph only; default beside the graph)")
    p.add_argument("--no-tf32", dest="tf32", action="store_false",
                   help="keep fp32 layers in fp32 on Ampere and later (TensorRT and TensorRT-RTX allow TF32 "
                   "by default)")
    p.add_argument("--json", action="store_true", help="print the manifests as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run_build)


def _profile(texts: list[str] | None) -> tuple | None:
    if not texts:
        return None
    try:
        return tuple(tuple(int(v) for v in t.lower().split("x")) for t in texts)
    except ValueError:
        raise UserError(f"--profile {' '.join(texts)}: write three shapes BxHxW, e.g. 1x64x64 1x256x256 4x512x512") \
            from None


def run_build(args) -> int:
    from elir_edge.engines import BuildOptions, build_engine
    from elir_edge.engines.report import build_table

    if args.output and len(args.onnx) > 1:
        raise UserError("-o names one engine: build one graph at a time with -o, or leave -o out")
    profile = _profile(args.profile)
    if profile and any(len(s) != 3 for s in profile):
        raise UserError("--profile: write three shapes BxHxW, e.g. 1x64x64 1x256x256 4x512x512")
    manifests = []
    for path in args.onnx:
        manifests.append(build_engine(path, BuildOptions(target=args.target, sms=args.sm or BuildOptions().sms,
                                                         output=args.output, tf32=args.tf32, profile=profile),
                                      quiet=args.quiet or args.json))
    print(json.dumps(manifests, indent=2) if args.json else build_table(manifests))
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
    from elir_edge.bench.report import bench_tables
    from elir_edge.demo.run import run_demo as demo
    from elir_edge.engines.report import engine_line
    from elir_edge.quantize.report import int8_sizes
    from elir_edge.quantize.runtimes import runtimes_line

    r = demo(args.output, args.seed, args.quiet)
    q = r["quantize"]
    print("\n".join([*r["bench"]["chosen"], bench_tables(r["bench"])]))
    print(f"\nint8 files against the float one: {int8_sizes(q['files'])}")
    print(f"int8 files on this machine's CPU runtimes: {runtimes_line(q['runtimes_here'])}")
    print(f"RTX 2080 Ti engine (TensorRT-RTX, built here without a GPU): {engine_line(q['engine'])}")
    print(f"strip: {r['strip']}\nplot: {r['plot']}\nreport: {r['report']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="elir-edge", description="ELIR from checkpoint to edge artifact, "
                                     "with measured speed and quality.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
    add_quantize_parser(sub)
    add_restore_parser(sub)
    add_build_parser(sub)
    add_bench_parser(sub)
    add_demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed in one line
        return int(e.code or 0)
    try:
        return args.run(args)
    except UserError as e:
        print(f"elir-edge {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _stopped(args.command)
    except OSError as e:  # the machine's fault, not the input's: a full disk, a read-only mount, ...
        print(f"elir-edge {args.command}: error: {os_error(e)}", file=sys.stderr)
        return 2
    except InternalError as e:
        print(f"elir-edge {args.command}: internal error: {e}: this is a bug in elir-edge, not a problem with your "
              f"input; please report it with {bug_report(argv, e)}", file=sys.stderr)
        return 3
    except Exception as e:
        if not _interrupted(e):
            raise
        return _stopped(args.command)


def _stopped(command: str) -> int:
    """Ctrl-C's one line and exit status."""
    print(f"elir-edge {command}: interrupted; nothing half-written was kept", file=sys.stderr)
    return 130


def _interrupted(e: BaseException) -> bool:
    """Ctrl-C that Python handed on inside another error: a KeyboardInterrupt raised while a library's import runs
    a class body's __set_name__ comes out as Python 3.11's RuntimeError("Error calling __set_name__ ...") (seen
    in CI: Ctrl-C while MCT's import reached triton)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def bug_report(argv: list[str] | None, e: Exception) -> str:
    """A file with what a maintainer needs (the command, versions, the traceback), or a note if none can be
    written."""
    import platform
    import tempfile
    import traceback

    from elir_edge import __version__

    text = (f"elir-edge {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
            f"command: elir-edge {' '.join(argv if argv is not None else sys.argv[1:])}\n\n"
            + "".join(traceback.format_exception(e)))
    try:
        with tempfile.NamedTemporaryFile("w", prefix="elir-edge-bug-", suffix=".txt", delete=False) as f:
            f.write(text)
        return f"the details in {f.name}"
    except OSError:
        return "the command you ran and `pip freeze`"


# errno -> what to do about it
OS_FIXES = {errno.ENOSPC: "free space on that disk or write elsewhere (-o)",
            errno.EDQUOT: "free space within your quota or write elsewhere (-o)",
            errno.EFBIG: "the file is larger than this process may write (ulimit -f): raise the limit or write elsewhere",
            errno.EROFS: "that file system is read-only: write elsewhere (-o)",
            errno.EACCES: "you may not write there: choose a folder you own (-o)",
            errno.EPERM: "you may not write there: choose a folder you own (-o)",
            errno.ENAMETOOLONG: "choose a shorter file or folder name",
            errno.EIO: "the disk reported an I/O error: check it, or write elsewhere"}


def os_error(e: OSError) -> str:
    """One line for an OS error: the path, what the system said, and the fix; nothing partial was kept
    (every output is written to a temporary file first)."""
    where = e.filename or "a file"
    fix = OS_FIXES.get(e.errno, "check the path and the disk")
    return f"{where}: {e.strerror or e}: {fix}; nothing half-written was kept"


if __name__ == "__main__":
    sys.exit(main())
