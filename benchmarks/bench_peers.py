"""Our int8 files beside the quantizers users would pick instead (issue 24): ONNX Runtime's quantize_static,
NNCF and NVIDIA ModelOpt, on the same model, calibration arrays, held-out inputs, runtimes and machine.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -r benchmarks/peers-requirements.txt
    .venv/bin/python benchmarks/bench_peers.py --peers-python /tmp/peers/bin/python \\
        --json benchmarks/results/peers_demo.json                        # bundled demo model, 256 px
    .venv/bin/python benchmarks/bench_peers.py --preset sr --peers-python /tmp/peers/bin/python \\
        --json benchmarks/results/peers_sr256.json                       # random-weight sr preset, 256 px

The peers live in their own environment (they pull onnxruntime-gpu, torch, cupy), never in the project's:
each quantizer runs there in a fresh process (`--worker`), wall time and peak RSS read off that process
(/usr/bin/time -v). Ours is `elir-edge quantize` with default options, also in a fresh process. Every peer is fed
the arrays our quantize calibrates on (the bundled photographs degraded the task's way, seeded eps, its
held-out images left out); our MCT calibrates on crops of at most 256 px, the full graph at 256 px. Then
`elir-edge bench` runs every file on ONNX Runtime CPU and OpenVINO CPU in one fresh process (taking turns
run by run; PSNR/SSIM against the float model with bootstrap intervals, against the ground truth, the
noise floor). A peer that does not import is a row "not installed"; one that raises, a row with its error.
The sr checkpoint has random weights: its int8-vs-float figures compare quantizers, its GT figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
NOT_INSTALLED = 3  # a worker's exit status when its quantizer does not import
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")

# label -> (worker, its settings); ours runs in the project's python, the rest in --peers-python
PEERS = {
    "ours, TensorRT form (MCT)": ("ours", {"file": "model_int8.onnx"}),
    "ours, CPU form (MCT, 7-bit weights)": ("ours", {"file": "model_int8_cpu.onnx"}),
    "ours, CPU form (MCT, 8-bit weights)": ("ours", {"file": "model_int8_cpu_w8.onnx"}),
    "ours, OpenVINO form (MCT, no zero points)": ("ours", {"file": "model_int8_cpu_s8.onnx"}),
    "ORT quantize_static s8 sym per-channel, MinMax": ("ort", {"act": "s8", "method": "MinMax"}),
    "ORT quantize_static s8 sym per-channel, Entropy": ("ort", {"act": "s8", "method": "Entropy"}),
    "ORT quantize_static u8 + reduce_range, MinMax": ("ort", {"act": "u8", "method": "MinMax"}),
    "ORT quantize_static u8 + reduce_range, Entropy": ("ort", {"act": "u8", "method": "Entropy"}),
    "NNCF ONNX, PERFORMANCE preset": ("nncf", {}),
    "ModelOpt ONNX int8, max": ("modelopt", {"method": "max"}),
    "ModelOpt ONNX int8, entropy": ("modelopt", {"method": "entropy"}),
}
VERSIONS = ("onnxruntime", "onnxruntime-gpu", "nncf", "nvidia-modelopt", "onnx", "torch", "numpy")


# ---- workers: run in the peers' environment, import nothing of elir_edge -------------------------------

def _feeds(calib: Path) -> list[dict]:
    import numpy as np

    z = np.load(calib)
    return [{"lq": z["lq"][i:i + 1], "eps": z["eps"][i:i + 1]} for i in range(len(z["lq"]))]


def work_ort(src: Path, out: Path, calib: Path, act: str, method: str) -> None:
    """ONNX Runtime's static QDQ quantization as its docs set it up: s8 symmetric per-channel (TensorRT's
    form), or u8 activations with reduce_range (the advice for CPUs without VNNI)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(_feeds(calib))

        def get_next(self):
            return next(self.it, None)

    s8 = act == "s8"
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8 if s8 else QuantType.QUInt8, weight_type=QuantType.QInt8,
                    reduce_range=not s8, calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"ActivationSymmetric": s8, "WeightSymmetric": True})


def work_nncf(src: Path, out: Path, calib: Path) -> None:
    """NNCF's post-training quantization on the ONNX backend, its PERFORMANCE (symmetric) preset."""
    import nncf
    import onnx

    feeds = _feeds(calib)
    q = nncf.quantize(onnx.load(str(src)), nncf.Dataset(feeds), preset=nncf.QuantizationPreset.PERFORMANCE,
                      subset_size=len(feeds))
    onnx.save(q, str(out))


def work_modelopt(src: Path, out: Path, calib: Path, method: str) -> None:
    """ModelOpt's ONNX PTQ, int8, calibrated on the CPU (ORT's CPU provider): the TensorRT 11 route."""
    import numpy as np
    from modelopt.onnx.quantization import quantize

    z = np.load(calib)
    quantize(str(src), quantize_mode="int8", calibration_data={"lq": z["lq"], "eps": z["eps"]},
             calibration_method=method, calibration_eps=["cpu"], output_path=str(out))


def work_ours(folder: Path, calib_dir: Path) -> None:
    """`elir-edge quantize` with its default options on the bundled photographs."""
    from elir_edge.quantize.stage import QuantizeOptions, quantize_export

    quantize_export(QuantizeOptions(model=folder, calib=calib_dir), quiet=True)


def worker(args) -> int:
    """One quantizer in this process; exit NOT_INSTALLED when it does not import."""
    if args.worker == "versions":
        from importlib.metadata import PackageNotFoundError, version

        def v(p):
            try:
                return version(p)
            except PackageNotFoundError:
                return None
        import onnxruntime  # onnxruntime and onnxruntime-gpu share one module: say which one imports

        print(json.dumps({**{p: v(p) for p in VERSIONS}, "onnxruntime module": onnxruntime.__version__}))
        return 0
    settings = json.loads(args.settings)
    try:
        if args.worker == "ours":
            return work_ours(Path(args.src), Path(settings["calib_dir"])) or 0
        fn = {"ort": work_ort, "nncf": work_nncf, "modelopt": work_modelopt}[args.worker]
        fn(Path(args.src), Path(args.out), Path(args.calib), **settings)
    except ImportError as e:
        print(f"not installed: {type(e).__name__}: {e}", file=sys.stderr)
        return NOT_INSTALLED
    return 0


# ---- the driver: project's python ------------------------------------------------------------------------

def timed_process(cmd: list[str], log: Path) -> dict:
    """Run `cmd` in a fresh process under /usr/bin/time -v: wall seconds, peak RSS, exit status, last error
    line. (A child's own rusage would start from this process's high-water mark, inherited at exec.)"""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=f, stderr=subprocess.STDOUT,
                              cwd=log.parent).returncode
    text = log.read_text(errors="replace")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    out = {"seconds": time.perf_counter() - t0, "peak_rss_gb": int(rss.group(1)) / 1e6 if rss else None, "exit": code}
    if code:
        lines = [ln.strip() for ln in text.split("\tCommand being timed")[0].splitlines()
                 if ln.strip() and not ln.startswith("Command exited")]
        wanted = [ln for ln in lines if ln.startswith("not installed")] or \
            [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)] or lines or ["no output"]
        out["error"] = wanted[-1][:300]
    return out


def run_worker(python: str, name: str, settings: dict, src: Path, out: Path, calib: Path, log: Path) -> dict:
    cmd = [python, str(HERE), "--worker", name, "--settings", json.dumps(settings), "--src", str(src),
           "--out", str(out), "--calib", str(calib)]
    r = timed_process(cmd, log)
    if r["exit"] == NOT_INSTALLED:
        r["status"] = r.pop("error")
    elif r["exit"] == 0 and name != "ours" and not out.is_file():
        r["exit"], r["error"] = 1, f"wrote no {out.name}"
    r.setdefault("status", "ok" if r["exit"] == 0 else "error")
    return r


def export_model(preset: str | None, size: int | None, folder: Path) -> Path:
    """The bundled demo model, or a random-weight checkpoint of `preset` (elir_edge.model.synthetic)."""
    from elir_edge.demo import CHECKPOINT
    from elir_edge.exporter.stage import ExportOptions, export_checkpoint

    ckpt, task = CHECKPOINT, None
    if preset:
        from elir_edge.model.presets import PRESETS, preset_arch
        from elir_edge.model.synthetic import random_model, save_checkpoint

        p, task = PRESETS[preset], preset
        ckpt = save_checkpoint(random_model(preset_arch(preset), k=p.k_steps, sigma=p.sigma_s),
                               folder / f"{preset}.pth", "release")
    out = folder / "export"
    export_checkpoint(ckpt, ExportOptions(task=task, image_size=(size, size) if size else None, output=out,
                                          fp16=False), quiet=True)
    return out


def calibration_arrays(folder: Path, calib_dir: Path, out: Path) -> dict:
    """The (lq, eps) arrays our quantize calibrated on, saved for the peers: its own calibration_batches,
    less the images its report says it held out."""
    import numpy as np

    from elir_edge.model.export_folder import ExportFolder
    from elir_edge.quantize.calibration import calibration_batches

    export = ExportFolder(folder)
    s, report = export.settings, json.loads((folder / "quant_report.json").read_text())["calibration"]
    batches = calibration_batches(calib_dir, s.height, s.width, export.latent_channels, task=s.task,
                                  seed=report["seed"])
    used = batches[:len(batches) - report["held_out"]]
    np.savez(out, lq=np.concatenate([b[0].numpy() for b in used]), eps=np.concatenate([b[1].numpy() for b in used]))
    return {"folder": str(calib_dir), "images": len(used), "held_out_by_ours": report["held_out"],
            "degraded_as": s.task, "shape": [len(used), 3, s.height, s.width]}


def quantize_all(folder: Path, calib_dir: Path, peers_python: str | None, work: Path) -> tuple[dict, dict]:
    """Ours first (its report fixes the calibration arrays), then every peer on those arrays."""
    float_path, npz = folder / "model.onnx", work / "calib.npz"
    ours = run_worker(sys.executable, "ours", {"calib_dir": str(calib_dir)}, folder, folder, npz, work / "ours.log")
    if ours["exit"]:
        raise SystemExit(f"our quantize failed: {ours.get('error')} (log {work / 'ours.log'})")
    calib = calibration_arrays(folder, calib_dir, npz)
    profile = json.loads((folder / "quant_report.json").read_text())["profile"]
    ours["stages_s"], ours["mct_phases"] = profile["stages_s"], profile["mct_phases"]
    runs = {}
    for i, (label, (name, settings)) in enumerate(PEERS.items()):
        if name == "ours":
            runs[label] = {**ours, "file": str(folder / settings["file"])}
            continue
        out = folder / f"peer_{i}_{name}.onnx"
        if peers_python is None:
            runs[label] = {"status": "not installed: no --peers-python given", "exit": NOT_INSTALLED}
            continue
        runs[label] = {**run_worker(peers_python, name, settings, float_path, out, npz, work / f"peer_{i}.log"),
                       "file": str(out)}
        print(f"{label}: {runs[label]['status']} {runs[label].get('error', '')} "
              f"({runs[label]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return runs, calib


def bench(files: list[Path], data: Path, args, work: Path) -> dict:
    """`elir-edge bench` on every file, both CPU runtimes, in one fresh process (files take turns)."""
    out = work / "bench.json"
    cmd = [sys.executable, "-m", "elir_edge.cli", "bench", "--data", str(data), "--runtime", "ort",
           "--runtime", "openvino", "--duration", str(args.duration), "--iterations",
           str(args.iterations), "--json", str(out)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    for f in files:
        cmd += ["--engine", str(f)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def heldout(data: Path, n: int | None, work: Path) -> Path:
    """The held-out folder, or its first `n` images in a folder of their own."""
    if n is None:
        return data
    from elir_edge.common.images import load_images

    names = [name for name, _ in load_images(data, "held-out folder")][:n]
    sub = work / "heldout"
    sub.mkdir()
    for name in names:
        shutil.copy(data / name, sub / Path(name).name)
    return sub


def file_facts(path: Path, threads: int | None) -> dict:
    """Size, the Q/DQ nodes the file holds, and the convolutions ONNX Runtime runs in int8 after its fusions."""
    import onnx

    from bench_quantize import optimized_op_counts  # benchmarks/ is this script's folder

    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    fused = optimized_op_counts(path, threads or 2)
    return {"bytes": path.stat().st_size, **{op: ops.count(op) for op in QDQ_OPS},
            "ort_qlinearconv": fused.get("QLinearConv", 0),
            "ort_float_conv": sum(fused.get(op, 0) for op in ("Conv", "FusedConv", "ConvTranspose")),
            "ort_optimized_ops": dict(fused)}


def _stat(d: dict, metric: str, stat: str) -> float:
    return d[metric][stat]["value"]


def quality_rows(report: dict, labels: dict[str, str]) -> list[list[str]]:
    """One line per file and runtime: quality against the float model and the truth, speed vs float there."""
    float_ms = {r["runner"]: r["speed"]["median_ms"] for r in report["rows"] if r["is_reference"] or
                Path(r["artifact"]).name == "model.onnx"}
    rows = []
    for r in report["rows"]:
        name = labels.get(r["artifact"], Path(r["artifact"]).name)
        vf = r.get("vs_float")
        lo, hi = vf["psnr"]["mean"]["ci95"] if vf else (0, 0)
        rows.append([name, r["runner"],
                     f"{_stat(vf, 'psnr', 'mean'):.1f} [{lo:.1f}, {hi:.1f}]" if vf else "reference",
                     f"{_stat(vf, 'psnr', 'worst_5pct'):.1f}" if vf else "-",
                     f"{_stat(vf, 'ssim', 'mean'):.4f}" if vf else "-",
                     f"{_stat(r['vs_gt'], 'psnr', 'mean'):.2f}", f"{r['speed']['median_ms']:.0f}",
                     f"{float_ms[r['runner']] / r['speed']['median_ms']:.2f}x", "wrong here" if "flag" in r else ""])
    return rows


def cost_rows(runs: dict, float_bytes: int) -> list[list[str]]:
    """One line per quantizer: file size, Q/DQ nodes, quantize wall time and peak memory, or why it is missing."""
    rows = []
    for label, r in runs.items():
        if r["status"] != "ok":
            rows.append([label, r["status"] if r["status"] != "error" else f"error: {r['error']}"] + ["-"] * 7)
            continue
        f = r["facts"]
        rows.append([label, "ok", f"{f['bytes'] / 1e6:.2f} MB", f"{f['bytes'] / float_bytes:.2f}x",
                     str(f["QuantizeLinear"]), str(f["DequantizeLinear"]),
                     f"{f['ort_qlinearconv']} / {f['ort_float_conv']}", f"{r['seconds']:.0f} s",
                     f"{r['peak_rss_gb']:.2f} GB"])
    return rows


def tables(result: dict) -> str:
    from elir_edge.common.tables import table

    q = result["bench"]["quality"]
    labels = {r["file"]: label for label, r in result["quantizers"].items() if r["status"] == "ok"}
    labels[result["float_file"]] = "fp32 (model.onnx)"
    worst = "min" if q["images"] <= 20 else "worst 5%"  # describe's worst 5 % is the minimum up to 20 images
    head = ["file", "runtime", "PSNR vs fp32 mean [95% CI]", worst, "SSIM vs fp32", "PSNR vs GT", "median ms",
            "speed vs fp32"]
    floor = q["noise_floor_vs_float"]["psnr"]["mean"]["value"]
    ours = next(r for r in result["quantizers"].values() if "stages_s" in r)
    roof = result["bench"].get("cpu_roof") or {}
    return "\n\n".join([
        table(quality_rows(result["bench"], labels), header=head + [""]),
        table(cost_rows(result["quantizers"], result["float_bytes"]),
              header=["quantizer", "status", "file", "vs fp32", "Q", "DQ", "ORT int8 / float convs",
                      "quantize wall", "peak RSS"]),
        f"{q['images']} held-out images, {result['calibration']['images']} calibration images "
        f"(degraded as {result['calibration']['degraded_as']}); noise floor (float model, other eps) "
        f"{floor:.1f} dB vs float; degraded input {q['degraded_vs_gt']['psnr']['mean']['value']:.2f} dB vs GT; "
        f"CPU flags: {' '.join(result['cpu_flags']) or 'none of avx2/avx512_vnni/amx'}; our quantize's stages: "
        + ", ".join(f"{k.split(' (')[0]} {v:.1f} s" for k, v in ours["stages_s"].items())
        + "; MCT's phases: " + ", ".join(f"{p['phase'].split(' (')[0]} {p['seconds']:.1f} s" for p in ours["mct_phases"])
        + (f"; this CPU's int8:fp32 conv roof on the model's shapes (ONNX Runtime): {roof['int8_vs_fp32']:.2f}x"
           if "int8_vs_fp32" in roof else "")])


def versions(peers_python: str | None) -> dict:
    """Package versions of the project's environment (runtimes, MCT) and the peers' (quantizers)."""
    from importlib.metadata import version

    ours = {p: version(p) for p in ("onnxruntime", "openvino", "model-compression-toolkit", "torch", "onnx")}
    if peers_python is None:
        return {"project": ours}
    run = subprocess.run([peers_python, str(HERE), "--worker", "versions"], capture_output=True, text=True)
    return {"project": ours, "peers": json.loads(run.stdout) if run.returncode == 0 else run.stderr[-300:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", help="a random-weight checkpoint of this preset (e.g. sr); default the demo model")
    ap.add_argument("--image-size", type=int, help="square export size (default: the checkpoint's)")
    ap.add_argument("--peers-python", help="python of the peers' environment (see the docstring)")
    ap.add_argument("--data", type=Path, help="held-out clean images (default: the bundled held-out set)")
    ap.add_argument("--images", type=int, help="only the first N held-out images")
    ap.add_argument("--threads", type=int, help="CPU threads of both runtimes")
    ap.add_argument("--duration", type=float, default=1.5, help="bench: at least this many seconds per file")
    ap.add_argument("--iterations", type=int, default=10, help="bench: at least this many runs per file")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="copy the float and every int8 file into this folder (to profile "
                    "them with bench_cpu_profile.py), named after their quantizer")
    for hidden in ("--worker", "--settings", "--src", "--out", "--calib"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    result = measure(args)
    print(tables(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def keep(files: list[Path], runs: dict, folder: Path) -> None:
    """The files, copied out of the bench's temporary folder, each named after its row
    (`ours_cpu_form_mct_8_bit_weights.onnx`)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {Path(r["file"]): re.sub(r"\W+", "_", label.lower()).strip("_") for label, r in runs.items()
             if r["status"] == "ok"}
    for f in files:
        shutil.copy(f, folder / f"{names.get(f, f.stem)}.onnx")


def measure(args) -> dict:
    from elir_edge.demo import CALIBRATION_DIR, HELDOUT_DIR

    cpu = sorted(set(re.findall(r"avx512_vnni|avx2|amx\w*", Path("/proc/cpuinfo").read_text())))
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        folder = export_model(args.preset, args.image_size, work)
        runs, calib = quantize_all(folder, CALIBRATION_DIR, args.peers_python, work)
        for r in runs.values():
            if r["status"] == "ok":
                r["facts"] = file_facts(Path(r["file"]), args.threads)
        files = [folder / "model.onnx"] + [Path(r["file"]) for r in runs.values() if r["status"] == "ok"]
        if args.keep:
            keep(files, runs, args.keep)
        report = bench(files, heldout(args.data or HELDOUT_DIR, args.images, work), args, work)
        return {"model": args.preset or "bundled demo (elir_edge/demo/elir_demo.ckpt)", "cpu_flags": cpu,
                "command": " ".join(sys.argv), "versions": versions(args.peers_python), "calibration": calib,
                "float_file": str(folder / "model.onnx"),
                "float_bytes": (folder / "model.onnx").stat().st_size, "quantizers": runs, "bench": report}


if __name__ == "__main__":
    sys.exit(main())
