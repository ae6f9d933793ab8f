"""Stage 1: checkpoint -> folded model -> unrolled graph -> verified ONNX artifact folder."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from elir_edge import __version__
from elir_edge.common.files import (
    atomic_dir,
    ensure_writable_dir,
    sha256_file,
    write_json,
)
from elir_edge.common.progress import Stages
from elir_edge.errors import InternalError, UserError
from elir_edge.exporter.fp16 import norm_input_peaks, to_fp16
from elir_edge.exporter.options import DEFAULT_TOLERANCE, ExportOptions
from elir_edge.exporter.onnx_graph import OPSET, save, set_metadata, simplify, to_onnx
from elir_edge.model.arch import build_elir
from elir_edge.model.checkpoint import load_checkpoint
from elir_edge.model.counts import count_macs, count_params
from elir_edge.model.export_folder import FLOAT, FP16, MANIFEST, WEIGHTS, ExportFolder, is_export_folder
from elir_edge.model.folded import build_unrolled, folded_model
from elir_edge.model.noise import baked_noise, seeded_inputs
from elir_edge.model.settings import resolve_settings
from elir_edge.runtime.interface import input_names
from elir_edge.runtime.compare import agreement as compare
from elir_edge.runtime.compare import run_graph



def default_output(checkpoint: Path) -> Path:
    return Path("export") / Path(checkpoint).stem


@dataclass
class _Folded:
    """The folded model and what was measured on the seeded inputs while folding."""
    model: torch.nn.Module
    pairs: int
    fold_error: float  # max |folded - over-parameterized| on the seeded inputs
    example: tuple  # (lq, eps) or (lq,) for baked noise
    reference: torch.Tensor  # the over-parameterized looped model's output: what the ONNX must reproduce
    source_params: int
    gmacs: float  # per image


def _fold(ckpt, s, opts: ExportOptions) -> _Folded:
    torch.manual_seed(opts.seed)
    with torch.no_grad():
        reference = build_elir(ckpt.arch, s.k_steps, s.sigma_s, ckpt.state_dict())
        folded, n_folded = folded_model(ckpt, s)
        lq, eps = seeded_inputs(s, ckpt.arch, opts.seed)
        if opts.baked_noise:
            eps = baked_noise(s, ckpt.arch, opts.seed)
        ref_out = reference(lq, eps)
        source_params = count_params(reference)
        del reference  # the over-parameterized model is the largest object of the export
        with count_macs() as macs:
            folded_out = folded(lq, eps)
    return _Folded(folded, n_folded, float((folded_out - ref_out).abs().max()) if n_folded else 0.0,
                   (lq,) if opts.baked_noise else (lq, eps), ref_out, source_params, macs["macs"] / s.batch / 1e9)


def _verify(hq: np.ndarray, f: _Folded, opts: ExportOptions, checkpoint: Path):
    """ONNX Runtime's output `hq` of the written graph against the looped PyTorch model; above the tolerance our
    defect, unless the user's tolerance is below float32 rounding."""
    agreement = compare([hq], [f.reference.numpy()])
    if not agreement.max_abs_err <= opts.tolerance:
        if agreement.max_abs_err <= DEFAULT_TOLERANCE:  # the user's bound is below float32 rounding
            raise UserError(f"verification failed: ONNX differs from PyTorch by {agreement.max_abs_err:.2e}, "
                            f"above --tolerance {opts.tolerance:g} but within float32 rounding of the "
                            f"unrolled graph: loosen --tolerance (default {DEFAULT_TOLERANCE:g})")
        raise InternalError(f"verification failed: ONNX differs from PyTorch by {agreement.max_abs_err:.2e} "
                            f"(> {opts.tolerance:g}) on {checkpoint.name}; nothing was written")
    return agreement


def export_checkpoint(checkpoint: str | Path, opts: ExportOptions, quiet: bool = False) -> dict:
    """Run the whole export; returns the manifest written next to `model.onnx`."""
    stages = Stages(6 + opts.fp16, quiet)
    checkpoint = Path(checkpoint)
    with stages("load checkpoint"):
        ckpt = load_checkpoint(checkpoint)
        s = resolve_settings(ckpt.arch, opts.task, opts.steps, opts.sigma, opts.image_size, opts.batch, ckpt.hyper)
        out_dir = Path(opts.output) if opts.output else default_output(checkpoint)
        ensure_writable_dir(out_dir)
        stale = check_output_folder(out_dir)
    with stages("fold over-parameterized blocks"):
        f = _fold(ckpt, s, opts)
    with stages(f"unroll {s.k_steps} Euler steps"):
        unrolled = build_unrolled(f.model, s, opts.seed if opts.baked_noise else None)
        deployed_params = count_params(unrolled)
    with atomic_dir(out_dir) as tmp:
        onnx_path = tmp / FLOAT
        with stages(f"export ONNX (opset {OPSET}) and simplify"):
            model = simplify(to_onnx(unrolled, f.example, opts.dynamic))
            set_metadata(model, _metadata(ckpt, s, opts, f))
            save(model, onnx_path)
            del model, unrolled
        with stages("verify ONNX Runtime against PyTorch"):
            feeds = dict(zip(input_names(opts.baked_noise), (t.numpy() for t in f.example)))
            (hq,), = run_graph(onnx_path, [feeds])
            agreement = _verify(hq, f, opts, checkpoint)
        fp16 = None
        if opts.fp16:
            with stages("fp16 graph, checked against fp32 on ONNX Runtime"):
                fp16 = write_fp16(onnx_path, tmp / FP16, [feeds], [hq])
        with stages("write weights and manifest"):
            from safetensors.torch import save as weights_bytes

            # bytes written by Python, so a full disk is an OSError like any other write
            (tmp / WEIGHTS).write_bytes(weights_bytes({k: v.contiguous() for k, v in f.model.state_dict().items()}))
            manifest = _manifest(checkpoint, ckpt, s, opts, f, tmp, agreement, fp16, deployed_params)
            manifest["seconds"] = round(stages.elapsed(), 2)
            write_json(tmp / MANIFEST, manifest)
    manifest["folder"] = str(out_dir)
    if stale and not quiet:
        print(f"elir-edge export: note: {out_dir} still holds {', '.join(stale)} from the previous export; they "
              "no longer match it: run `elir-edge quantize` (and build) again", file=sys.stderr)
    return manifest


def _metadata(ckpt, s, opts: ExportOptions, f: _Folded) -> dict:
    """What the ONNX carries about itself (every later stage reads the graph's task and size from here)."""
    return {"elir_edge_version": __version__, "task": s.task, "k_steps": s.k_steps, "sigma_s": s.sigma_s,
            "image_size": f"{s.height}x{s.width}", "batch": s.batch, "dynamic": opts.dynamic,
            "noise": "baked" if opts.baked_noise else "input", "seed": opts.seed,
            "source_sha256": ckpt.sha256, "source_format": ckpt.format, "folded_pairs": f.pairs,
            "fold_error": f.fold_error, "arch": json.dumps(ckpt.arch.collapsed().to_dict())}


def _manifest(checkpoint: Path, ckpt, s, opts: ExportOptions, f: _Folded, tmp: Path, agreement, fp16: dict | None,
              deployed_params: int) -> dict:
    onnx_path = tmp / FLOAT
    return {
        "elir_edge_version": __version__,
        "created_unix": int(time.time()),
        "source": {"path": str(checkpoint), "sha256": ckpt.sha256, "format": ckpt.format, "params": f.source_params},
        "settings": s.to_dict(),
        "arch": ckpt.arch.collapsed().to_dict(),
        "source_arch": ckpt.arch.to_dict(),
        "fold": {"pairs": f.pairs, "max_abs_err": f.fold_error},
        "onnx": {"file": FLOAT, "sha256": sha256_file(onnx_path), "bytes": onnx_path.stat().st_size, "opset": OPSET,
                 "inputs": {n: list(t.shape) for n, t in zip(input_names(opts.baked_noise), f.example)},
                 "outputs": {"hq": list(f.reference.shape)}, "dynamic": opts.dynamic,
                 "noise": "baked" if opts.baked_noise else "input", "seed": opts.seed},
        "weights": {"file": WEIGHTS, "sha256": sha256_file(tmp / WEIGHTS)},
        "verification": {**agreement.to_dict(), "tolerance": opts.tolerance, "seed": opts.seed},
        "fp16": fp16,
        "deployed_params": deployed_params,
        "gmacs_per_image": f.gmacs,
        "versions": _versions(),
    }


def check_output_folder(folder: Path) -> list[str]:
    """An output folder may be new, empty, or an export folder (updated in place: its export files are
    replaced, everything else stays); any other folder with files in it is the user's: refuse before any
    work. Returns the previous export's derived files (int8 graphs, engines, reports), now stale."""
    if not folder.is_dir():
        return []
    present = sorted(p.name for p in folder.iterdir())
    if not present:
        return []
    if not is_export_folder(folder):
        raise UserError(f"output folder {folder} already holds files ({', '.join(present[:3])}"
                        f"{', ...' if len(present) > 3 else ''}) and is not an export folder: choose a new or empty "
                        "folder with -o/--output")
    return ExportFolder(folder).stale_files()


def write_fp16(fp32_path: Path, out_path: Path, feeds: list[dict], fp32_hq: list[np.ndarray]) -> dict:
    """model_fp16.onnx beside the fp32 graph, and how far it is from it on `feeds` (PSNR, data range 1);
    `fp32_hq`: the fp32 graph's outputs on them, which verification has just computed."""
    import onnx

    fp32 = onnx.load(str(fp32_path))
    half, info = to_fp16(fp32, norm_input_peaks(fp32, feeds))
    onnx.save(half, str(out_path))
    a = compare([o[0] for o in run_graph(out_path, feeds)], fp32_hq)
    return {"file": out_path.name, "bytes": out_path.stat().st_size, "sha256": sha256_file(out_path),
            "psnr_vs_fp32_db": a.psnr_db, "max_abs_err": a.max_abs_err, **info}


def _versions() -> dict:
    import onnx
    import onnxruntime
    import onnxsim

    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxsim": onnxsim.__version__, "numpy": np.__version__}
