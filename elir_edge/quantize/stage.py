"""Stage 2: export folder -> MCT INT8 -> TensorRT-form Q/DQ ONNX (+ CPU form), the probe, the report.

Error attribution is by block and by Euler step: every variant of the graph is compared with the
float graph on held-out calibration images, and the latent is compared after every step.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from elir_edge import __version__
from elir_edge.common.files import atomic_files
from elir_edge.common.memory import memory_gb
from elir_edge.common.progress import Stages, each
from elir_edge.errors import InternalError, UserError
from elir_edge.exporter.fp16 import norm_inputs, to_fp16
from elir_edge.exporter.onnx_graph import simplify
from elir_edge.model.export_folder import (
    FLOAT,
    INT8,
    INT8_CPU,
    INT8_CPU_S8,
    INT8_CPU_W8,
    INT8_FP16,
    PROBE,
    QUANT_REPORT,
    ExportFolder,
)
from elir_edge.model.folded import build_unrolled, load_folded
from elir_edge.model.settings import SIZE_MULTIPLE, RunSettings
from elir_edge.quantize.calibration import calibration_batches, calibration_folder
from elir_edge.quantize.mct import (
    MctProgress,
    export_quantized,
    quantize_module,
    release_memory,
    trim_heap,
)
from elir_edge.quantize.options import QuantizeOptions
from elir_edge.quantize.qdq_rewrite import (
    conv_block,
    latent_tensors,
    rewrite,
    seen_grids,
    select_convs,
    signed_grid_tensors,
)
from elir_edge.quantize.qdq_rules import check
from elir_edge.quantize.runtimes import cpu_file_to_ship, record_runtimes, runtimes_to_check
from elir_edge.quantize.seen_ranges import range_images, seen_ranges
from elir_edge.runtime.compare import agreement
from elir_edge.runtime.interface import input_names
from elir_edge.runtime.ort import session_with_outputs

CALIB_CROP = 256  # MCT calibrates a fully convolutional model: crops of this size stand for larger inputs
TRACE_SIZE = SIZE_MULTIPLE  # MCT's model is traced at the smallest side the graph takes
MAX_HOLDOUT = 4  # held-out images for the drift figures by default: each costs a run of every variant
SENSITIVITY_PIXELS = 2 * 256 * 256  # held-out pixels each block's sensitivity is measured on by default (a run each)


def block_of(conv_name: str) -> str:
    """encoder | coarse estimator | step k | decoder, from a conv's module path."""
    head = conv_block(conv_name)
    if head.startswith("steps_"):
        return f"step {head.split('_')[1]}"
    return {"enc": "encoder", "mmse": "coarse estimator", "dec": "decoder"}.get(head.split("_")[0], head)


class Evaluator:
    """Runs graphs on the held-out calibration inputs and compares them with the float graph."""

    def __init__(self, float_model: onnx.ModelProto, feeds: list[dict], threads: int | None = None):
        self.feeds, self.threads = feeds, threads
        self.ref, self.ref_latents, _ = self._run(float_model)

    def first(self, n: int) -> "Evaluator":
        """The same comparison on the first n inputs, without running the float graph again."""
        ev = copy.copy(self)
        ev.feeds, ev.ref, ev.ref_latents = self.feeds[:n], self.ref[:n], self.ref_latents[:n]
        return ev

    def _run(self, model: onnx.ModelProto, latents: bool = True, peaks_of: tuple[str, ...] = ()):
        """hq and the latent after each step, per input; and the largest |x| of each tensor of `peaks_of` over
        the inputs, taken input by input (those tensors are not kept)."""
        lat = latent_tensors(model) if latents else []
        peaks_of = tuple(dict.fromkeys(peaks_of))
        sess = session_with_outputs(model, [*lat, *peaks_of], self.threads)
        outs, lats, peaks = [], [], dict.fromkeys(peaks_of, 0.0)
        for f in self.feeds:
            hq, *rest = sess.run(["hq", *lat, *peaks_of], f)
            outs.append(hq)
            lats.append(rest[:len(lat)])
            for name, value in zip(peaks_of, rest[len(lat):]):
                peaks[name] = max(peaks[name], float(np.abs(value).max()))
        return outs, lats, peaks

    def compare(self, model: onnx.ModelProto, latents: bool = True, peaks_of: tuple[str, ...] = ()) -> dict:
        """PSNR/SSIM of the output vs the float graph, the latent SNR after each step (float32 graphs), and the
        peaks of `peaks_of` (measured in the same runs)."""
        out, lat, peaks = self._run(model, latents, peaks_of)
        a = agreement(out, self.ref, with_ssim=True)
        steps = []
        for k in range(len(lat[0])):
            sig = np.mean([np.mean(np.square(r[k])) for r in self.ref_latents])
            err = np.mean([np.mean(np.square(q[k] - r[k])) for q, r in zip(lat, self.ref_latents)])
            steps.append(float(10 * np.log10(sig / err)) if err > 0 else float("inf"))
        return {"psnr_vs_float": a.psnr_db, "ssim_vs_float": a.ssim, "latent_snr_db": steps, "peaks": peaks}


def _variant(mct_graph: onnx.ModelProto, float_convs: set[str], target: str = "tensorrt") -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(mct_graph)
    rewrite(m, float_convs, target)
    return m


@dataclass
class _Inputs:
    """What the first stage reads and checks before MCT starts, for the stages after it."""
    export: ExportFolder
    float_path: Path
    float_graph: onnx.ModelProto
    calib_dir: Path
    held: list  # (lq, eps) held-out images at the graph's size, one each
    ranged: list  # (lq, eps) calibration images at the graph's size, for the CPU forms' activation ranges
    n_hold: int
    size: int  # side of the calibration crops
    estimate: dict

    @property
    def baked(self) -> bool:
        return self.export.baked_noise

    def feeds(self, pairs: list | None = None) -> list[dict]:
        """ONNX Runtime feeds of the held-out images (or of `pairs`)."""
        names = input_names(self.baked)
        return [dict(zip(names, (t.numpy() for t in ((lq,) if self.baked else (lq, eps)))))
                for lq, eps in (self.held if pairs is None else pairs)]


@dataclass
class _MctInputs:
    """What MCT and the export of its model take: torch's half of the inputs, let go once the Q/DQ graph exists
    (at bfr 512 px, the folded weights and the calibration crops are 0.2 GB)."""
    unrolled: torch.nn.Module
    calib: list[tuple[torch.Tensor, torch.Tensor]]  # (lq, eps) batches MCT calibrates on (crops)
    first: tuple[torch.Tensor, torch.Tensor]  # one (lq, eps) at the graph's size, the export example
    baked: bool

    @property
    def images(self) -> int:
        return sum(len(b[0]) for b in self.calib)


def _open_export(opts: QuantizeOptions) -> tuple[ExportFolder, Path, onnx.ModelProto, torch.nn.Module]:
    export = ExportFolder(opts.model) if opts.model is not None else ExportFolder.newest()
    s, float_path = export.settings, export.verified(FLOAT)
    if s.batch != 1:
        raise UserError(f"the export has static batch {s.batch}: re-export with --batch 1 to quantize")
    if opts.ptq.gptq_epochs > 0 and not export.baked_noise:
        raise UserError("--gptq-epochs needs a single-input graph: MCT 2.6.1's GPTQ loop feeds a two-input "
                        "model (lq, eps) as one concatenated tensor and fails; export with --noise baked")
    try:
        return export, float_path, onnx.load(str(float_path)), load_folded(export)
    except UserError:
        raise
    except Exception as e:  # a damaged or foreign export folder: missing keys, truncated files
        raise UserError(f"{export.path} is not a complete export folder ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:100] if str(e) else 'damaged file'}): export the checkpoint again") \
            from None


def _read_inputs(opts: QuantizeOptions, quiet: bool) -> tuple[_Inputs, _MctInputs]:
    export, float_path, float_graph, folded = _open_export(opts)
    s, baked = export.settings, export.baked_noise
    calib_dir = calibration_folder(opts.calib, quiet)
    batches = calibration_batches(calib_dir, s.height, s.width, export.latent_channels,
                                  task=s.task if opts.degrade else None, num_images=opts.num_images, batch=1,
                                  seed=opts.seed)
    n_hold = opts.holdout if opts.holdout is not None else min(MAX_HOLDOUT, max(1, len(batches) // 4))
    if n_hold < 0:
        raise UserError(f"--holdout {n_hold}: hold out 0 or more calibration images")
    if len(batches) - n_hold < 1:
        raise UserError(f"{len(batches)} calibration image(s) leave none for calibration after holding out "
                        f"{n_hold}: add images or pass --holdout 0")
    calib = batches[:len(batches) - n_hold]
    held = batches[len(batches) - n_hold:] or calib  # --holdout 0: drift measured on calibration images
    size = calibration_size(opts.calib_size, s, baked)
    unrolled = build_unrolled(folded, s, export.noise_seed if baked else None)
    _check_patterns(unrolled, opts.keep_float)
    estimate = estimate_memory(folded, size, opts.batch, len(batches), s)
    check_memory(estimate, opts.memory_limit_gb)
    return (_Inputs(export, float_path, float_graph, calib_dir, held, calib[:range_images(s.height, s.width)],
                    n_hold, size, estimate),
            _MctInputs(unrolled, _rebatch([crop(b, size, opts.seed + i) for i, b in enumerate(calib)], opts.batch),
                       batches[0], baked))


def quantize_export(opts: QuantizeOptions, quiet: bool = False) -> dict:
    runtimes = runtimes_to_check(opts.runtimes)
    stages = Stages(7 + opts.auto_precision, quiet)
    with stages("read export and calibration images"):
        x, for_mct = _read_inputs(opts, quiet)
    images, progress = for_mct.images, MctProgress(quiet=quiet)
    mct_graph = _mct_graph(opts, for_mct, x.size, stages, progress)
    del for_mct
    release_memory()  # MCT's graphs and models and torch's inputs are gone: the stages after it start from less
    feeds = x.feeds()
    n_sens = min(len(feeds), opts.sensitivity_images or sensitivity_images(x.export.settings))
    with stages(f"sensitivity per block and per Euler step ({n_sens} held-out image{'s' * (n_sens > 1)})"):
        ev = Evaluator(x.float_graph, feeds)
        sensitivity = _sensitivity(mct_graph, ev.first(n_sens), quiet)
    float_convs, trail = select_convs(mct_graph, opts.keep_float), []
    if opts.auto_precision:
        with stages(f"auto precision to {opts.target_psnr:g} dB"):
            float_convs, trail = _auto_precision(mct_graph, ev, _convs(mct_graph), float_convs, sensitivity,
                                                 opts.target_psnr)
    with stages("rewrite for TensorRT and the CPU, check rules, measure drift"):
        graphs, drifts, half_info = _int8_graphs(mct_graph, float_convs, ev, x.feeds(x.ranged))
    blobs = _serialized(graphs, x.float_graph)
    del graphs  # the files are their bytes from here on
    trim_heap()  # what the drift's sessions freed goes back before the runtimes' check starts
    with stages(f"check which CPU runtime ({', '.join(runtimes)}) computes each int8 file right here"):
        probe, verdicts = record_runtimes(blobs, feeds[0], ev.ref[0], runtimes)
    report = _report(opts, x, blobs, drifts, half_info, probe, verdicts,
                     {"sensitivity": sensitivity, "trail": trail, "n_sens": n_sens, "float_convs": float_convs,
                      "convs": _convs(mct_graph), "images": images})
    with stages("write the int8 graphs, the probe and the report"):
        blobs[PROBE] = probe
        report["seconds"] = round(stages.elapsed(), 1)
        report["profile"] = {"stages_s": dict(stages.durations), "mct_phases": progress.phases,
                             "memory_estimate": x.estimate, "memory_gb": memory_gb(), "peak_stage": stages.peak_stage}
        blobs[QUANT_REPORT] = (json.dumps(report, indent=2) + "\n").encode()
        with atomic_files([x.export / n for n in blobs]) as tmps:  # all of them, or none
            for blob, tmp in zip(blobs.values(), tmps):
                tmp.write_bytes(blob)
    return report


def _mct_graph(opts: QuantizeOptions, m: _MctInputs, size: int, stages: Stages,
               progress: MctProgress) -> onnx.ModelProto:
    """MCT's quantized model, exported to Q/DQ ONNX; the model itself goes once traced."""
    with stages(f"MCT post-training quantization on {m.images} images ({size}x{size})"
                + (f" (GPTQ, {opts.ptq.gptq_epochs} epochs)" if opts.ptq.gptq_epochs else "")):
        held = [quantize_module(m.unrolled, [(lq,) if m.baked else (lq, eps) for lq, eps in m.calib], opts.ptq,
                                progress)]  # handed to the export, which lets MCT's model go once traced
    with stages("export Q/DQ ONNX"):
        names, full = input_names(m.baked), (m.first[0],) if m.baked else m.first
        if m.baked:  # the noise is a constant of the graph's own size: traced at that size
            return simplify(export_quantized(held.pop(), full, names))
        # traced at the smallest size the graph takes with the height and width free (1/256 of the activations
        # at bfr's 512 px), then fixed at the graph's own: the same graph, node for node and weight for weight
        small = crop(m.first, TRACE_SIZE, opts.seed)
        return simplify(export_quantized(held.pop(), small, names, free_size=True),
                        {name: list(t.shape) for name, t in zip(names, full)})


def _convs(mct_graph: onnx.ModelProto) -> list[str]:
    return [n.name for n in mct_graph.graph.node if n.op_type in ("Conv", "ConvTranspose")]


def _sensitivity(mct_graph: onnx.ModelProto, ev: Evaluator, quiet: bool) -> dict[str, float]:
    """PSNR vs float with one block in int8 and the rest float, for each block (encoder, coarse estimator,
    step k, decoder)."""
    convs = _convs(mct_graph)
    blocks = sorted({block_of(c) for c in convs}, key=_block_order)
    return {b: ev.compare(_variant(mct_graph, {c for c in convs if block_of(c) != b}), latents=False)["psnr_vs_float"]
            for b in each(blocks, "blocks quantized alone", quiet)}


def _int8_graphs(mct_graph, float_convs: set[str], ev: Evaluator, calib_feeds: list[dict]):
    """The five int8 files (TensorRT form checked against NVIDIA's rules, CPU forms with 7- and 8-bit weights on
    the activation ranges seen on `calib_feeds`, the OpenVINO form on MCT's grids, int8+fp16) and each one's drift
    against the float graph."""
    final = _variant(mct_graph, float_convs, "tensorrt")
    _check_rules(final, float_convs, INT8)
    cpu, cpu_w8 = _variant(mct_graph, float_convs, "cpu"), _variant(mct_graph, float_convs, "cpu_w8")
    # the same tensors in both forms; read off the 7-bit one, which ONNX Runtime computes right on every x86 CPU
    ranges = seen_ranges(cpu, calib_feeds, signed_grid_tensors(cpu))
    for m in (cpu, cpu_w8):
        seen_grids(m, ranges)
    cpu_s8 = _variant(mct_graph, float_convs, "cpu_s8")
    norms = norm_inputs(final)  # their peaks decide which stay fp32: measured in the drift's own runs
    drift = ev.compare(final, peaks_of=tuple(norms.values()))
    half, half_info = to_fp16(final, {node: drift["peaks"][tensor] for node, tensor in norms.items()})
    _check_rules(half, float_convs, INT8_FP16)
    drifts = {INT8: drift, INT8_CPU: ev.compare(cpu), INT8_CPU_W8: ev.compare(cpu_w8, latents=False),
              INT8_CPU_S8: ev.compare(cpu_s8, latents=False), INT8_FP16: ev.compare(half, latents=False)}
    graphs = {INT8: final, INT8_CPU: cpu, INT8_CPU_W8: cpu_w8, INT8_CPU_S8: cpu_s8, INT8_FP16: half}
    return graphs, drifts, half_info


FLAVOURS = {INT8: "tensorrt (int8 zero point 0)",
            INT8_CPU: "cpu (uint8 on the ranges seen in calibration, zero point 0 after ReLU; 7-bit weights)",
            INT8_CPU_W8: "cpu (uint8 on the ranges seen in calibration, zero point 0 after ReLU; 8-bit weights)",
            INT8_CPU_S8: "cpu, for OpenVINO (int8 on MCT's grids, every zero point 0; 8-bit weights)",
            INT8_FP16: "tensorrt (int8 zero point 0), float parts fp16"}  # the int8_flavour metadata


def _serialized(graphs: dict[str, onnx.ModelProto], float_graph: onnx.ModelProto) -> dict[str, bytes]:
    """Each graph with the float graph's metadata, quantize's mark and its flavour, as bytes."""
    meta = {**{p.key: p.value for p in float_graph.metadata_props}, "quantized_by": f"elir-edge {__version__} + MCT"}
    blobs = {}
    for name, model in graphs.items():
        del model.metadata_props[:]
        for k, v in {**meta, "int8_flavour": FLAVOURS[name]}.items():
            model.metadata_props.add(key=k, value=str(v))
        blobs[name] = model.SerializeToString()
    return blobs


def _report(opts: QuantizeOptions, x: _Inputs, blobs: dict[str, bytes], drifts: dict, half_info: dict,
            probe: bytes, runtimes: dict, found: dict) -> dict:
    float_bytes = x.float_path.stat().st_size
    drift, drift_cpu, drift_half = drifts[INT8], drifts[INT8_CPU], drifts[INT8_FP16]
    return {
        "elir_edge_version": __version__, "export": str(x.export.path), "settings": x.export.settings.to_dict(),
        "calibration": {"folder": str(x.calib_dir), "images": found["images"],
                        "held_out": x.n_hold, "drift_measured_on": "held-out images" if x.n_hold else
                        "calibration images (--holdout 0)", "degraded": opts.degrade, "seed": opts.seed},
        "ptq": {"error_method": opts.ptq.error_method, "weights_error_method": opts.ptq.weights_error_method,
                "bias_correction": opts.ptq.bias_correction,
                "z_threshold": opts.ptq.z_threshold, "gptq_epochs": opts.ptq.gptq_epochs},
        "layers": {"quantized": len(found["convs"]) - len(found["float_convs"]), "float": sorted(found["float_convs"])},
        "files": {**{name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest(), "ratio_vs_float": len(b) / float_bytes}
                     for name, b in blobs.items()}, FLOAT: {"bytes": float_bytes}},
        "size_ratio": len(blobs[INT8]) / float_bytes,
        "tensorrt_rules": {"checked": "R1-R8", "graphs": [INT8, INT8_FP16]},
        "int8_vs_float": {"psnr_db": drift["psnr_vs_float"], "ssim": drift["ssim_vs_float"], "images": len(x.held)},
        "int8_cpu_vs_float": {"psnr_db": drift_cpu["psnr_vs_float"], "ssim": drift_cpu["ssim_vs_float"]},
        "int8_cpu_w8_vs_float": {"psnr_db": drifts[INT8_CPU_W8]["psnr_vs_float"],
                                 "ssim": drifts[INT8_CPU_W8]["ssim_vs_float"]},
        "int8_cpu_s8_vs_float": {"psnr_db": drifts[INT8_CPU_S8]["psnr_vs_float"],
                                 "ssim": drifts[INT8_CPU_S8]["ssim_vs_float"]},
        "int8_fp16_vs_float": {"psnr_db": drift_half["psnr_vs_float"], "ssim": drift_half["ssim_vs_float"],
                               "vs_int8_fp32_db": drift_half["psnr_vs_float"] - drift["psnr_vs_float"], **half_info},
        "cpu": _cpu_verdict(x.float_path, len(blobs[INT8_CPU]) / float_bytes, opts.cpu, runtimes["runtimes"]),
        "probe": {"file": PROBE, "sha256": hashlib.sha256(probe).hexdigest(),
                  "reference_psnr_db": runtimes["reference_psnr_db"]},
        "runtimes_here": runtimes["runtimes"],
        "latent_snr_db_per_step": drift["latent_snr_db"],
        "sensitivity_psnr_db_block_alone_int8": found["sensitivity"],
        "auto_precision": found["trail"],
        "sensitivity_images": found["n_sens"],
        "calibration_size": x.size,
    }


def _cpu_verdict(float_path: Path, size_ratio: float, target: str, runtimes: dict) -> dict:
    """Whether the CPU form will be faster on this machine (its conv roof measured in a few seconds), and which
    CPU file to ship to the target CPU."""
    from elir_edge.runtime.cpu_roof import measure_cpu

    cpu = measure_cpu(float_path, size_ratio=size_ratio)
    return {"features": cpu["features"], "int8_vs_fp32_conv": cpu["int8_vs_fp32"], "verdict": cpu["verdict"],
            "ship": cpu_file_to_ship(target, cpu["features"], runtimes)}


def _check_rules(model: onnx.ModelProto, float_convs: set[str], name: str) -> None:
    violations = check(model, float_convs)
    if violations:
        raise InternalError(f"{name} breaks TensorRT rule {violations[0]} ({len(violations)} violations); "
                            "nothing was written")


def sensitivity_images(s: RunSettings) -> int:
    """Held-out images that hold SENSITIVITY_PIXELS at the graph's size (2 at 256 px, 1 at 512 px), at least 1:
    every block costs a run of the whole graph on each."""
    return max(1, SENSITIVITY_PIXELS // (s.height * s.width))


def calibration_size(asked: int | None, s: RunSettings, baked: bool) -> int:
    """The side of the square crops MCT calibrates on. Baked noise fixes the graph's size."""
    side = min(s.height, s.width)
    if asked is None:
        return side if baked else min(side, CALIB_CROP)
    if asked % SIZE_MULTIPLE or asked < SIZE_MULTIPLE or asked > side:
        raise UserError(f"--calib-size {asked}: a multiple of {SIZE_MULTIPLE}, at most the graph's {side} px")
    if baked and asked != side:
        raise UserError(f"--calib-size {asked}: a --noise baked export carries eps of its full size; calibrate at {side}")
    return asked


def crop(batch: tuple, size: int, seed: int) -> tuple:
    """A seeded crop of an (lq, eps) pair, origins on multiples of 8 so the eps slice matches the image."""
    lq, eps = batch
    h, w = lq.shape[-2:]
    if (h, w) == (size, size):
        return batch
    rng = np.random.default_rng(seed)
    y, x = (int(rng.integers(0, (n - size) // 8 + 1)) * 8 for n in (h, w))
    return lq[..., y:y + size, x:x + size], eps[..., y // 8:(y + size) // 8, x // 8:(x + size) // 8]


# A model of the quantize command's peak memory: the larger of two moments. During MCT: what is resident
# (torch, MCT), MCT's graph and models (each holds every unrolled step's own copy of the shared weights), the
# few node outputs alive at once (MCT's statistics stream: quantize/mct_lean.py), the histograms and the
# calibration images. After MCT: the CPU runtimes, the Q/DQ graphs (the export of MCT's model, its variants,
# their bytes: copies of the weights) and ONNX Runtime running them at the graph's full size. The
# coefficients are fitted to the sr and bfr runs of benchmarks/bench_quantize_scale.py (9 images; MCT's after
# the streamed statistics, the export's after the export let MCT's model go), rounded up (benchmarks/RESULTS.md,
# 2026-12-07: estimates 3.5 / 5.6 GB against 3.4 / 5.3 GB measured).
BASE_GB, RUNTIMES_GB = 1.5, 0.6
MCT_WEIGHT_COPIES, LIVE_ACTIVATION_COPIES = 4.8, 0.05
GRAPH_WEIGHT_COPIES, FULL_ACTIVATION_COPIES = 5.5, 0.1


def estimate_memory(folded, size: int, batch: int, images: int, s: RunSettings) -> dict:
    """Peak memory of the quantize command, GB: one forward of the unrolled model on a 64 px probe counts the
    activations (they scale with the pixels) and the node outputs MCT keeps histograms for. The moment after MCT
    (the Q/DQ graphs, the runtimes running them at the graph's full size) still counts every calibration image,
    though only the held-out and range images stay then: an estimate on the safe side."""
    from elir_edge.model.unroll import UnrolledElir
    from elir_edge.quantize.mct_lean import MERGE_EVERY

    module = UnrolledElir(folded).eval()
    probe, acts, calls = 64, [0], [0]

    def hook(mod, inputs, output):
        if not list(mod.children()) and isinstance(output, torch.Tensor):
            acts[0] += output.numel() * 4
            calls[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, probe, probe), torch.zeros(1, folded.arch.latent_channels, probe // 8, probe // 8))
    finally:
        handle.remove()
    weights = sum(p.numel() * 4 for m in module.modules() for p in m.parameters(recurse=False)) / 1e9  # per step
    during = {"weights": MCT_WEIGHT_COPIES * weights,
              "activations": LIVE_ACTIVATION_COPIES * acts[0] * (size / probe) ** 2 * batch / 1e9,
              "histograms": calls[0] * MERGE_EVERY * 2 * 2049 * 8 / 1e9,
              "images": images * 3 * s.height * s.width * 4 * 2 / 1e9}
    after = {"runtimes": RUNTIMES_GB, "graphs": GRAPH_WEIGHT_COPIES * weights,
             "full_size_activations": FULL_ACTIVATION_COPIES * acts[0] * s.height * s.width / probe ** 2 / 1e9}
    mct, export = BASE_GB + sum(during.values()), BASE_GB + sum(after.values()) + during["images"]
    return {"total_gb": round(max(mct, export), 2), "during_mct_gb": round(mct, 2), "export_gb": round(export, 2),
            "resident": BASE_GB, **{k: float(f"{v:.3g}") for k, v in {**during, **after}.items()},
            "calib_size": size, "batch": batch}


def available_gb() -> float:
    """MemAvailable of this machine (Linux), GB; inf where it cannot be read."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return float("inf")


def check_memory(estimate: dict, limit_gb: float | None) -> None:
    """Refuse, before MCT starts, a calibration that would not fit, saying what to lower."""
    limit = limit_gb if limit_gb is not None else available_gb()
    if estimate["total_gb"] > limit:
        if estimate["during_mct_gb"] >= estimate["export_gb"]:
            worst = f"MCT on a {estimate['calib_size']} px calibration batch of {estimate['batch']}"
            fix = f"lower --calib-size (a multiple of {SIZE_MULTIPLE}) or --batch"
        else:
            worst, fix = "checking the int8 graphs at the graph's full size", \
                "export at a smaller --image-size or lower --num-images"
        raise UserError(f"quantize would need about {estimate['total_gb']:.1f} GB (peak while {worst}), "
                        f"{limit:.1f} GB are available: {fix}, or free memory")


def _check_patterns(module: torch.nn.Module, patterns: list[str]) -> None:
    """Every --keep-float pattern must name at least one conv of the unrolled model (checked before MCT runs)."""
    import fnmatch

    convs = [n for n, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p + ".*") for n in convs):
            raise UserError(f"--keep-float {p!r} matches no conv of the model (module paths look like "
                            f"{convs[0]}, {convs[-1]}, steps.1.final_proj): fix the pattern")


def _block_order(b: str) -> tuple:
    order = {"encoder": 0, "coarse estimator": 1, "decoder": 9}
    return (order.get(b, 5), int(b.split()[1]) if b.startswith("step") else 0)


def _rebatch(batches, size):
    lq = torch.cat([b[0] for b in batches])
    eps = torch.cat([b[1] for b in batches])
    return [(lq[i:i + size], eps[i:i + size]) for i in range(0, len(lq), size)]


def _auto_precision(mct_graph, ev, convs, float_convs, sensitivity, target):
    """Keep the most sensitive blocks in float, one at a time, until the output PSNR reaches `target`."""
    trail = []
    float_convs = set(float_convs)
    for block in sorted(sensitivity, key=sensitivity.get):
        got = ev.compare(_variant(mct_graph, float_convs))["psnr_vs_float"]
        trail.append({"float_blocks": sorted({block_of(c) for c in float_convs}), "psnr_db": got})
        if got >= target:
            return float_convs, trail
        float_convs |= {c for c in convs if block_of(c) == block}
    got = ev.compare(_variant(mct_graph, float_convs))["psnr_vs_float"]
    trail.append({"float_blocks": sorted({block_of(c) for c in float_convs}), "psnr_db": got})
    return float_convs, trail
