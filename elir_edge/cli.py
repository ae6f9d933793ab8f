"""The `elir-edge` command: a thin layer of argument parsing over the library's stages."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError
from .presets import PRESETS
from .report import human_bytes, table

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


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the bundled trained model",
                       description="Export the bundled demo ELIR (trained here on public-domain photos), restore "
                                   "its held-out images, write a before/after strip and a report.")
    p.add_argument("-o", "--output", type=Path, default=Path("export") / "elir_demo", help="artifact folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradations and of eps")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from .demo.run import run_demo as demo

    r = demo(args.output, args.seed, args.quiet)
    print(table([["degraded input", f"{r['degraded_vs_gt']['psnr']:.2f}", f"{r['degraded_vs_gt']['ssim']:.3f}"],
                 ["ELIR fp32 (ONNX Runtime)", f"{r['fp32_vs_gt']['psnr']:.2f}", f"{r['fp32_vs_gt']['ssim']:.3f}"]],
                header=[f"{r['task']}, {len(r['images'])} held-out images", "PSNR dB vs GT", "SSIM vs GT"]))
    print(f"strip: {r['strip']}\nreport: {Path(r['export']) / 'demo_report.json'}")
    for line in r["not_run"]:
        print(f"not run: {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elir-edge", description="ELIR from checkpoint to edge artifact, "
                                     "with measured speed and quality.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_parser(sub)
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
