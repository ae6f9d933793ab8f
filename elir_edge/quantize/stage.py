"""Stage 2: export folder -> MCT INT8 -> TensorRT-form Q/DQ ONNX (+ CPU flavour) -> engine where possible.

Error attribution is by block and by Euler step: every variant of the graph is compared with the
float graph on held-out calibration images, and the latent is compared after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from elir_edge import __version__
from elir_edge.common.files import atomic_file, sha256_file, write_json
from elir_edge.common.metrics import psnr, ssim
from elir_edge.common.progress import Stages
from elir_edge.errors import UserError
from elir_edge.exporter.onnx_graph import simplify
from elir_edge.model.folded import build_unrolled, load_folded, read_manifest
from elir_edge.model.settings import RunSettings
from elir_edge.quantize.calibration import calibration_batches
from elir_edge.quantize.mct import PTQOptions, export_quantized, quantize_module
from elir_edge.quantize.qdq_rewrite import (
    conv_block,
    latent_tensors,
    rewrite,
    select_convs,
)
from elir_edge.quantize.qdq_rules import check
from elir_edge.runtime.interface import input_names

EDGE_LAYERS = ["enc.layers.0", "dec.layers.18", "steps.*.final_proj"]  # first conv, last conv, Euler updates


@dataclass
class QuantizeOptions:
    model: Path | None = None  # export folder; default: newest under export/
    calib: Path = Path("calibration")
    degrade: bool = True  # the folder holds clean photographs: synthesize the task's inputs
    num_images: int | None = None
    holdout: int | None = None  # calibration images kept out of PTQ for the drift figures
    batch: int = 2
    seed: int = 0
    ptq: PTQOptions = field(default_factory=PTQOptions)
    keep_float: list[str] = field(default_factory=list)  # module-path patterns, e.g. steps.*.final_proj
    auto_precision: bool = False
    target_psnr: float = 35.0
    engine: Path | None = None  # asked explicitly: failure to build is an error


def find_export(model: Path | None, root: Path = Path("export")) -> Path:
    if model is not None:
        if not (Path(model) / "manifest.json").is_file():
            raise UserError(f"{model} is not an export folder (no manifest.json): run `elir-edge export` first")
        return Path(model)
    found = sorted(root.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no export under {root}/: run `elir-edge export CKPT` first, or pass --model DIR")
    return found[-1].parent


def block_of(conv_name: str) -> str:
    """encoder | coarse estimator | step k | decoder, from a conv's module path."""
    head = conv_block(conv_name)
    if head.startswith("steps_"):
        return f"step {head.split('_')[1]}"
    return {"enc": "encoder", "mmse": "coarse estimator", "dec": "decoder"}.get(head.split("_")[0], head)


def _with_outputs(model: onnx.ModelProto, names: list[str]) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                          for n in names if n not in have)
    return m.SerializeToString()


class Evaluator:
    """Runs graphs on the held-out calibration inputs and compares them with the float graph."""

    def __init__(self, float_model: onnx.ModelProto, feeds: list[dict], threads: int | None = None):
        self.feeds, self.threads = feeds, threads
        self.ref, self.ref_latents = self._run(float_model)

    def _run(self, model: onnx.ModelProto):
        from elir_edge.runtime.ort import ort_session_from_bytes

        lat = latent_tensors(model)
        sess = ort_session_from_bytes(_with_outputs(model, lat), self.threads)
        outs = [sess.run(["hq", *lat], f) for f in self.feeds]
        return [o[0] for o in outs], [o[1:] for o in outs]

    def compare(self, model: onnx.ModelProto) -> dict:
        out, lat = self._run(model)
        per_img = [(psnr(o, r), float(np.mean([ssim(a, b) for a, b in zip(o, r)]))) for o, r in zip(out, self.ref)]
        steps = []
        for k in range(len(lat[0])):
            sig = np.mean([np.mean(np.square(r[k])) for r in self.ref_latents])
            err = np.mean([np.mean(np.square(q[k] - r[k])) for q, r in zip(lat, self.ref_latents)])
            steps.append(float(10 * np.log10(sig / err)) if err > 0 else float("inf"))
        return {"psnr_vs_float": float(np.mean([p for p, _ in per_img])),
                "ssim_vs_float": float(np.mean([s for _, s in per_img])),
                "latent_snr_db": steps}


def _variant(mct_graph: onnx.ModelProto, float_convs: set[str], target: str = "tensorrt") -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(mct_graph)
    rewrite(m, float_convs, target)
    return m


def quantize_export(opts: QuantizeOptions, quiet: bool = False) -> dict:
    stages = Stages(6 + opts.auto_precision, quiet)
    with stages("read export and calibration images"):
        folder = find_export(opts.model)
        manifest = read_manifest(folder)
        s = RunSettings(**manifest["settings"])
        baked = manifest["onnx"]["noise"] == "baked"
        if s.batch != 1:
            raise UserError(f"the export has static batch {s.batch}: re-export with --batch 1 to quantize")
        if opts.ptq.gptq_epochs > 0 and not baked:
            raise UserError("--gptq-epochs needs a single-input graph: MCT 2.6.1's GPTQ loop feeds a two-input "
                            "model (lq, eps) as one concatenated tensor and fails; export with --noise baked")
        latent = manifest["arch"]["latent_channels"]
        batches = calibration_batches(opts.calib, s.height, s.width, latent, task=s.task if opts.degrade else None,
                                      num_images=opts.num_images, batch=1, seed=opts.seed)
        n_hold = opts.holdout if opts.holdout is not None else max(1, len(batches) // 4)
        if n_hold < 0:
            raise UserError(f"--holdout {n_hold}: hold out 0 or more calibration images")
        if len(batches) - n_hold < 1:
            raise UserError(f"{len(batches)} calibration image(s) leave none for calibration after holding out "
                            f"{n_hold}: add images or pass --holdout 0")
        calib = batches[:len(batches) - n_hold]
        held = batches[len(batches) - n_hold:] or calib  # --holdout 0: drift measured on calibration images
        calib = _rebatch(calib, opts.batch)
    with stages(f"MCT post-training quantization on {sum(len(b[0]) for b in calib)} images"
                + (f" (GPTQ, {opts.ptq.gptq_epochs} epochs)" if opts.ptq.gptq_epochs else "")):
        unrolled = build_unrolled(load_folded(folder, manifest), s, manifest["onnx"]["seed"] if baked else None)
        _check_patterns(unrolled, opts.keep_float)
        module_inputs = [(lq,) if baked else (lq, eps) for lq, eps in calib]
        qmodel = quantize_module(unrolled, module_inputs, opts.ptq)
    with stages("export Q/DQ ONNX"):
        example = tuple(t[:1] for t in module_inputs[0])
        mct_graph = simplify(export_quantized(qmodel, example, input_names(baked)))
        float_graph = onnx.load(str(folder / "model.onnx"))
    names = input_names(baked)
    feeds = [dict(zip(names, (t.numpy() for t in ((lq,) if baked else (lq, eps))))) for lq, eps in held]
    with stages("sensitivity per block and per Euler step"):
        ev = Evaluator(float_graph, feeds)
        convs = [n.name for n in mct_graph.graph.node if n.op_type in ("Conv", "ConvTranspose")]
        blocks = sorted({block_of(c) for c in convs}, key=_block_order)
        sensitivity = {}
        for b in blocks:
            only_b = {c for c in convs if block_of(c) != b}
            sensitivity[b] = ev.compare(_variant(mct_graph, only_b))["psnr_vs_float"]
    float_convs = select_convs(mct_graph, opts.keep_float)
    if opts.auto_precision:
        with stages(f"auto precision to {opts.target_psnr:g} dB"):
            float_convs, trail = _auto_precision(mct_graph, ev, convs, float_convs, sensitivity, opts.target_psnr)
    else:
        trail = []
    with stages("rewrite for TensorRT, check rules, measure drift"):
        final = _variant(mct_graph, float_convs, "tensorrt")
        violations = check(final, float_convs)
        if violations:
            raise UserError(f"the Q/DQ graph breaks TensorRT rule {violations[0]} ({len(violations)} violations): "
                            "report this; the graph was not written")
        drift = ev.compare(final)
        cpu = _variant(mct_graph, float_convs, "cpu")
        drift_cpu = ev.compare(cpu)
    with stages("write artifacts"):
        meta = {**{p.key: p.value for p in float_graph.metadata_props}, "quantized_by": f"elir-edge {__version__} + MCT",
                "int8_flavour": "tensorrt (int8 zero point 0)"}
        for model, name, flavour in ((final, "model_int8.onnx", None), (cpu, "model_int8_cpu.onnx", "cpu (uint8 zp 128)")):
            del model.metadata_props[:]
            for k, v in {**meta, **({"int8_flavour": flavour} if flavour else {})}.items():
                model.metadata_props.add(key=k, value=str(v))
            with atomic_file(folder / name) as tmp:
                onnx.save(model, str(tmp))
        float_bytes = (folder / "model.onnx").stat().st_size
        report = {
            "elir_edge_version": __version__, "export": str(folder), "settings": s.to_dict(),
            "calibration": {"folder": str(opts.calib), "images": sum(len(b[0]) for b in calib),
                            "held_out": n_hold, "drift_measured_on": "held-out images" if n_hold else
                            "calibration images (--holdout 0)", "degraded": opts.degrade, "seed": opts.seed},
            "ptq": {"error_method": opts.ptq.error_method, "bias_correction": opts.ptq.bias_correction,
                    "z_threshold": opts.ptq.z_threshold, "gptq_epochs": opts.ptq.gptq_epochs},
            "layers": {"quantized": len(convs) - len(float_convs), "float": sorted(float_convs)},
            "files": {"model_int8.onnx": {"bytes": (folder / "model_int8.onnx").stat().st_size,
                                          "sha256": sha256_file(folder / "model_int8.onnx")},
                      "model_int8_cpu.onnx": {"bytes": (folder / "model_int8_cpu.onnx").stat().st_size},
                      "model.onnx": {"bytes": float_bytes}},
            "size_ratio": (folder / "model_int8.onnx").stat().st_size / float_bytes,
            "tensorrt_rules": {"violations": 0},
            "int8_vs_float": {"psnr_db": drift["psnr_vs_float"], "ssim": drift["ssim_vs_float"],
                              "images": len(held)},
            "int8_cpu_vs_float": {"psnr_db": drift_cpu["psnr_vs_float"], "ssim": drift_cpu["ssim_vs_float"]},
            "latent_snr_db_per_step": drift["latent_snr_db"],
            "sensitivity_psnr_db_block_alone_int8": sensitivity,
            "auto_precision": trail,
        }
        report["engine"] = _engine(folder, opts.engine)
        report["seconds"] = round(stages.elapsed(), 1)
        write_json(folder / "quant_report.json", report)
    return report


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


def _engine(folder: Path, explicit: Path | None) -> dict:
    """Build the INT8 engine (from the Q/DQ graph) and an FP16 one (from the float graph) where TensorRT
    and a GPU exist; otherwise say in one line why not. An explicitly asked --engine must be built."""
    from elir_edge.engines.tensorrt import build_engine
    from elir_edge.runtime.tensorrt import EngineUnavailable

    target = explicit or folder / "model_int8.trt"
    try:
        report = build_engine(folder / "model_int8.onnx", target)
    except EngineUnavailable as e:
        if explicit is not None:
            raise UserError(f"--engine {explicit}: {e}") from None
        return {"built": False, "reason": str(e)}
    try:
        report["fp16"] = build_engine(folder / "model.onnx", folder / "model_fp16.trt", fp16=True)
    except EngineUnavailable as e:
        report["fp16"] = {"built": False, "reason": str(e)}
    return report
