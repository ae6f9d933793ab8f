"""Quantize at the paper's sizes: wall time, peak memory and int8-vs-float PSNR of `elir-edge quantize` on
the sr (256 px, K=3) and bfr (512 px, K=5) presets with 9 and 64 calibration images.

    python benchmarks/bench_quantize_scale.py --json benchmarks/results/quantize_scale.json
    python benchmarks/bench_quantize_scale.py --code /tmp/old_checkout ...   # the same runs on other code
    python benchmarks/bench_quantize_scale.py --estimate-only ...   # only the memory estimate quantize prints

Checkpoints are random weights of the official shapes (time and memory do not depend on the values; the
PSNR is a like-for-like check between code versions, not a quality figure of a trained model). The
calibration set is made of seeded random crops and flips of the bundled calibration photographs (elir_edge/data/calibration/),
one held-out set as the quantize command chooses. Each quantize runs in a fresh process under
/usr/bin/time -v (wall time and maximum resident set size), with --no-engine where the code has it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def cli(code: Path) -> list[str]:
    """`elir-edge` from the checkout `code`, whatever elir_edge is installed (editable installs hook imports)."""
    boot = (f"import sys; sys.path.insert(0, {str(code)!r}); "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
            "from elir_edge.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", boot]


def calibration_set(folder: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "elir_edge" / "data" / "calibration").glob("*.png"))]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = photos[i % len(photos)]
        size = int(rng.integers(160, img.shape[0] + 1))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        crop = np.rot90(crop[:, ::-1] if rng.random() < 0.5 else crop, int(rng.integers(4)))
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"c{i:03d}.png")
    return folder


def export(task: str, folder: Path, code: Path) -> Path:
    """A random-weight checkpoint of the preset, exported by the code under test."""
    from elir_edge.model.presets import PRESETS, preset_arch
    from elir_edge.model.synthetic import random_model, save_checkpoint

    p = PRESETS[task]
    ckpt = save_checkpoint(random_model(preset_arch(task), k=p.k_steps, sigma=p.sigma_s), folder / f"{task}.pth",
                           "release")
    subprocess.run([*cli(code), "export", "-q", str(ckpt), "--task", task, "-o", str(folder / f"exp_{task}")],
                   check=True, cwd=code)
    return folder / f"exp_{task}"


def quantize(model: Path, calib: Path, code: Path, extra: list[str], limit_s: int) -> dict:
    help_text = subprocess.run([*cli(code), "quantize", "--help"], cwd=code, capture_output=True, text=True).stdout
    args = ["--no-engine"] if "--no-engine" in help_text else []
    cmd = ["/usr/bin/time", "-v", "timeout", str(limit_s), *cli(code), "quantize", "--model", str(model),
           "--calib", str(calib), *args, *extra]
    run = subprocess.run(cmd, cwd=code, capture_output=True, text=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", run.stderr)
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))) if wall else None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    out = {"command": "elir-edge " + " ".join(cmd[cmd.index("quantize"):]), "seconds": seconds, "peak_rss_gb": int(rss.group(1)) / 1e6 if rss else None,
           "finished": run.returncode == 0, "exit": run.returncode,
           "stages": re.findall(r"\[\d+/\d+\] (.+?) \.\.\. ([\d.]+) s", run.stderr)}
    if run.returncode == 0:
        report = json.loads((model / "quant_report.json").read_text())
        out.update(int8_vs_float_db=report["int8_vs_float"]["psnr_db"],
                   int8_cpu_vs_float_db=report["int8_cpu_vs_float"]["psnr_db"],
                   held_out=report["calibration"]["held_out"], images=report["calibration"]["images"],
                   profile=report.get("profile"))
    else:
        out["tail"] = run.stderr[-800:]
    return out


def estimate(model: Path, calib: Path, code: Path, extra: list[str]) -> dict:
    """The peak memory quantize estimates for this run, read from its refusal under a 1 MB limit (MCT never starts)."""
    run = subprocess.run([*cli(code), "quantize", "--model", str(model), "--calib", str(calib), "--no-engine",
                          "--memory-limit", "0.001", *extra], cwd=code, capture_output=True, text=True)
    found = re.search(r"would need about ([\d.]+) GB \(peak while (.+?)\)", run.stderr)
    return {"estimate_gb": float(found.group(1)), "peak_while": found.group(2)} if found else {"tail": run.stderr[-800:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose elir_edge runs (default: this one)")
    ap.add_argument("--tasks", nargs="+", default=["sr", "bfr"])
    ap.add_argument("--images", nargs="+", type=int, default=[9, 64])
    ap.add_argument("--limit", type=int, default=1800, help="seconds after which a run is stopped and recorded so")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more quantize options, last")
    ap.add_argument("--estimate-only", action="store_true", help="record quantize's memory estimate, run nothing")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cpu = sorted(set(re.findall(r"avx512_vnni|avx2|amx\w*", Path("/proc/cpuinfo").read_text())))
    results = {"cpu_flags": cpu, "code": str(args.code), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for task in args.tasks:
            model = export(task, tmp, args.code)
            for n in args.images:
                calib = calibration_set(tmp / f"calib{n}", n)
                measure = estimate(model, calib, args.code, args.extra) if args.estimate_only else \
                    quantize(model, calib, args.code, args.extra, args.limit)
                r = {"task": task, "calibration_images": n, **measure}
                results["runs"].append(r)
                print(json.dumps({k: v for k, v in r.items() if k not in ("profile", "tail")}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
