"""Stage 4: speed and quality drift of one or more artifacts, measured side by side in one run."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from elir_edge.bench.fid import cached_weights, check_weights_file, inception
from elir_edge.bench.machine import machine
from elir_edge.bench.artifacts import artifact_runtimes, chosen_files, open_artifact
from elir_edge.bench.options import BenchOptions
from elir_edge.bench.quality import ImageScorer, ScoreSettings, aggregate, first_input, items
from elir_edge.bench.report import is_our_report, plot
from elir_edge.bench.speed import measure_interleaved
from elir_edge.common.files import ensure_writable_dir, refuse_foreign, sha256_file
from elir_edge.common.images import list_images, written_by_us
from elir_edge.common.progress import bar
from elir_edge.common.rows import BENCH_REPORT, check_rows_path, write_rows
from elir_edge.errors import UserError
from elir_edge.model.export_folder import FLOAT, ExportFolder
from elir_edge.model.noise import latent_noise
from elir_edge.model.presets import PRESETS, is_paper_size
from elir_edge.runtime.probe import MARGIN_DB, WHY, probe_runner
from elir_edge.runtime.runner import Runner


def label(runner: Runner) -> str:
    """How a report names an artifact: its export folder and file."""
    return f"{runner.path.parent.name}/{runner.name}"


def _pairs(lq_dir: Path, hq_dir: Path) -> list[dict]:
    """The images of two folders paired by name (any format each), as scorer items."""
    lq = {p.relative_to(lq_dir).with_suffix("").as_posix(): p for p in list_images(lq_dir, "--lq folder")}
    hq = {p.relative_to(hq_dir).with_suffix("").as_posix(): p for p in list_images(hq_dir, "--hq folder")}
    if set(lq) != set(hq):
        odd = sorted(set(lq) ^ set(hq))
        raise UserError(f"--lq and --hq do not pair up ({len(odd)} unmatched, e.g. {odd[0]}): "
                        "give both folders the same file names")
    names = sorted(lq)
    return items(names, [lq[n] for n in names], [hq[n] for n in names])


def recorded_quality(path: Path) -> float | None:
    """PSNR vs float that quantize measured for this int8 graph (its export folder's report), if any."""
    folder = ExportFolder.of(path)
    return folder.recorded_psnr(Path(path).name) if folder else None


def cpu_roof(rows: list[dict], float_path: Path, arts: list[Runner], threads: int | None) -> dict:
    """This CPU's roof on the model's own dominant conv shapes (fp32 and the CPU form's int8), each CPU row's
    throughput as a share of it, and the one-line verdict on int8 here."""
    from elir_edge.runtime.cpu_roof import measure_cpu

    cpu_forms = [a.path for a in arts if a.interface.int8_cpu_form]
    size_ratio = cpu_forms[0].stat().st_size / float_path.stat().st_size if cpu_forms else None
    roof = measure_cpu(float_path, threads, size_ratio=size_ratio)
    folder = ExportFolder.of(float_path)
    gmacs = folder.gmacs_per_image if folder else None
    for row, a in zip(rows, arts):
        if row["on_gpu"] or gmacs is None:
            continue
        of = "int8" if a.interface.int8_cpu_form else "fp32"
        achieved = gmacs / (row["speed"]["median_ms"] / 1000 / row["speed"]["batch"])
        row["roof"] = {"gmac_s": achieved, "of": of, "percent": 100 * achieved / roof[f"{of}_gmac_s"]}
    return {**roof, "threads": threads, "model_gmacs": gmacs}


def eval_items(opts: BenchOptions) -> list[dict] | None:
    """The quality pass's images, as files: paired --lq/--hq, or --data degraded the task's way."""
    if opts.lq or opts.hq:
        if not (opts.lq and opts.hq):
            raise UserError("--lq and --hq go together: give both folders of paired images")
        return _pairs(opts.lq, opts.hq)
    if opts.data:
        paths = list_images(opts.data, "--data folder")
        return items([str(p.relative_to(opts.data)) for p in paths], paths)
    return None


def run_bench(opts: BenchOptions) -> dict:
    """Open every artifact, measure, and give every runtime's resources back (GPU buffers, streams) however
    the run ends."""
    if not opts.engines:
        raise UserError("no artifact given: pass --engine model.onnx (repeatable)")
    for flag, out, ours in (("--json", opts.json, is_our_report), ("--plot", opts.plot, written_by_us)):
        if out is not None:
            if Path(out).is_dir():
                raise UserError(f"{flag} {out} is a folder: give a file name")
            if Path(out).resolve() in {Path(e).resolve() for e in opts.engines}:
                raise UserError(f"{flag} {out} is one of the artifacts: choose another file")
            ensure_writable_dir(Path(out).parent)
            refuse_foreign(Path(out), ours, flag)
    if opts.fid_weights is not None:
        check_weights_file(Path(opts.fid_weights))
    if opts.report is not None:
        check_rows_path(Path(opts.report), BENCH_REPORT, opts.engines)
    if opts.ray is not None:
        from elir_edge.cluster.ray_data import precheck

        precheck(opts.ray)
    opts, chosen = chosen_files(opts)
    with contextlib.ExitStack() as opened:
        # artifacts timed in turns: ONNX Runtime's threads must not spin on the cores the next one uses
        alone = len(opts.engines) * len(opts.runtimes) == 1

        def open_(path: Path, runtime: str = "ort") -> Runner:
            return opened.enter_context(open_artifact(path, opts, runtime, spin=alone))

        arts = [open_(p, rt) for p, rt in artifact_runtimes(opts)]
        return {**_bench(opts, arts, open_), "chosen": chosen}


def _common_input(opts: BenchOptions, arts: list[Runner]) -> tuple[str, int, int, int]:
    """The task, H, W and latent channels every artifact of the run takes."""
    first = arts[0].interface
    task = opts.task or first.task
    if task is None:
        raise UserError(f"{arts[0].path} has no elir-edge metadata: pass --task ({'|'.join(PRESETS)})")
    if first.size is None:
        raise UserError(f"{arts[0].path} has a dynamic input size and no metadata: export with a static size")
    for a in arts[1:]:
        if a.interface.size != first.size:
            raise UserError(f"{a.path} takes {a.interface.size} inputs, {arts[0].path} takes {first.size}: compare "
                            "artifacts of one export")
    return (task, *first.size, first.latent_channels)


def _speed_rows(opts: BenchOptions, arts: list[Runner], first: np.ndarray | None, h: int, w: int,
                latent: int) -> list[dict]:
    """Every artifact timed in turns, the GPU rows among themselves first (on `first`, the first image's input,
    or noise); an int8 file a runtime computes wrongly here is flagged beside its row."""
    rng = np.random.default_rng(opts.seed)
    runs, batches = {}, {}
    for i, a in enumerate(arts):
        b = a.interface.batch or 1
        lq = first[None].repeat(b, 0) if first is not None else rng.random((b, 3, h, w), dtype=np.float32)
        eps = latent_noise(latent, h, w, opts.seed)[None].repeat(b, 0)
        runs[i] = (lambda r=a, lq=lq, eps=eps: r.timed(lq, eps)) if a.on_gpu else \
            (lambda r=a, lq=lq, eps=eps: r(lq, eps))
        batches[i] = b
    speeds = measure_interleaved(runs, opts.warmup, opts.iterations, opts.duration, batches,
                                 on_gpu={i for i, a in enumerate(arts) if a.on_gpu})
    base = speeds[0]["median_ms"]
    rows = []
    for i, a in enumerate(arts):
        speeds[i]["ratio_vs_first"] = base / speeds[i]["median_ms"]
        row = {"artifact": str(a.path), "label": label(a), "runner": a.kind, "on_gpu": a.on_gpu,
               "sha256": sha256_file(a.path), "speed": speeds[i], "load_ms": a.load_ms, "first_run_ms": a.first_run_ms,
               "context_ms": a.context_ms}
        row.update(_layer_figures(a))
        flags = [a.flag] if a.flag else []
        probed = probe_runner(a)
        if probed is not None:
            row["probe"] = probed.to_dict()
            if not probed.ok:
                flags.append(f"{probed.describe()} ({WHY}); its speed is not a fair figure")
        if flags:
            row["flag"] = "; ".join(flags)
        rows.append(row)
    return rows


def _layer_figures(a: Runner) -> dict:
    """An engine's layers by the precision TensorRT chose (its engine inspector), and a warning when an int8
    graph got no INT8 convolution kernel: its speed is then that of a float engine."""
    layers = a.layer_precisions()
    if layers is None:
        return {}
    out = {"layers": layers.to_dict()}
    if a.interface.int8 and layers.no_int8_kernels():
        fix = "build the INT8 engine with the full TensorRT on this GPU (`elir-edge build --target tensorrt`)" \
            if a.kind.startswith("TensorRT-RTX") else "this TensorRT has no faster INT8 kernel for them on this GPU"
        out["no_int8_kernels"] = (f"{a.kind} runs all {sum(layers.convolutions.values())} convolutions of this "
                                  f"int8 graph in floating point: its speed is a float engine's; {fix}")
    return out


def _scored(opts: BenchOptions, arts: list[Runner], ref: Runner, todo: list[dict], settings: ScoreSettings,
            net) -> list[tuple[dict, bytes]]:
    """Every image's (row, features), from this process or, with --ray, from the cluster's workers."""
    if opts.ray is None:
        scorer = ImageScorer(arts, ref, settings, net)
        return [scorer(it) for it in bar(todo, len(todo), "quality", quiet=not opts.progress)]
    from elir_edge.bench.on_ray import score_on_ray

    weights = (opts.fid_weights or cached_weights()) if net is not None else None  # the file the driver loaded
    return list(bar(score_on_ray(opts, arts, ref, todo, settings, weights), len(todo), "quality (Ray)",
                    quiet=not opts.progress))


def _quality(opts: BenchOptions, arts: list[Runner], rows: list[dict], todo: list[dict], ref: Runner,
             settings: ScoreSettings) -> dict:
    """Each artifact against the float reference and the ground truth, the noise floor, FID/KID."""
    net, unavailable = inception(opts.fid_weights)
    started = time.perf_counter()
    scored = _scored(opts, arts, ref, todo, settings, net)
    seconds = time.perf_counter() - started
    if not any(r["status"] == "scored" for r, _ in scored):
        raise UserError(f"none of the {len(todo)} images of the quality pass could be read ({scored[0][0]['error']}, "
                        f"e.g. {todo[0]['path']}): check the files")
    q = aggregate([r for r, _ in scored], [b for _, b in scored], len(arts), opts.seed,
                  {"reference": net.reference} if net is not None else unavailable)
    quality = {"images": q["images"], "failed": q["failed"], "failures": q["failures"], "reference": str(ref.path),
               "seed": opts.seed,
               "noise_floor_vs_float": q["noise_floor_vs_float"], "degraded_vs_gt": q["degraded_vs_gt"],
               "where": f"Ray cluster ({opts.ray})" if opts.ray is not None else "this process",
               "seconds": seconds, "images_per_s": q["images"] / seconds}
    for a, r, figures in zip(arts, rows, q["artifacts"]):
        r["is_reference"] = a is ref
        r.update(figures)
        r["recorded_vs_float_db"] = recorded_quality(a.path)
        measured = r.get("vs_float", {}).get("psnr", {}).get("mean", {}).get("value")
        if measured is not None and r["recorded_vs_float_db"] is not None and \
                measured < r["recorded_vs_float_db"] - MARGIN_DB and "flag" not in r:
            r["flag"] = (f"{measured:.1f} dB vs float here, {r['recorded_vs_float_db']:.1f} dB when quantized: "
                         f"{a.kind} computes this int8 graph wrongly on this machine ({WHY}); its speed is not a "
                         "fair figure")
    if opts.report is not None:
        write_rows(Path(opts.report), BENCH_REPORT, quality, [r for r, _ in scored])
    return quality


def _bench(opts: BenchOptions, arts: list[Runner], open_) -> dict:
    task, h, w, latent = _common_input(opts, arts)
    todo = eval_items(opts)
    settings = ScoreSettings(task, h, w, latent, opts.seed)
    float_path = arts[0].path.parent / FLOAT
    ref = next((a for a in arts if a.path == float_path), None)
    if ref is None and float_path.is_file():
        ref = open_(float_path)
    ref = ref or arts[0]
    rows = _speed_rows(opts, arts, first_input(todo, settings), h, w, latent)
    quality = _quality(opts, arts, rows, todo, ref, settings) if todo is not None else None
    preset = PRESETS.get(task)
    on_gpu = any(r["on_gpu"] for r in rows)
    report = {"task": task, "image_size": f"{h}x{w}", "machine": machine(on_gpu), "threads": opts.threads,
              "method": {"warmup_s": opts.warmup, "min_iterations": opts.iterations, "min_duration_s": opts.duration,
                         "timing": "host wall clock per run, inputs in memory, artifacts interleaved run by run "
                                   "(ONNX Runtime threads not spinning between runs when several are timed), "
                                   "median-based throughput; engine rows also CUDA events",
                         "provider": opts.provider, "cuda_graph": opts.cuda_graph},
              "rows": rows, "quality": quality,
              "paper_reference": {"device": "NVIDIA RTX 2080 Ti",
                                  "fps": preset.paper_fps_2080ti, "preset": preset.name} if preset else None,
              "paper_size": bool(preset) and is_paper_size(arts[0].interface.meta.get("arch"), (h, w), preset)}
    if opts.cpu_roof and not all(r["on_gpu"] for r in rows) and float_path.is_file():
        report["cpu_roof"] = cpu_roof(rows, float_path, arts, opts.threads)
    if opts.roofline:
        from elir_edge.bench.roofline import roofline

        report["roofline_estimate"] = roofline(ExportFolder(arts[0].path.parent), opts.roofline)
    if opts.plot:
        plot(report, opts.plot)
    return report
