"""`restore --ray` against one process on this machine (issue 23): throughput and Ray's overhead per image.

    python benchmarks/bench_ray.py [--images 200] [--size 256] [--json benchmarks/results/ray_restore.json]

Exports the bundled demo model, cuts `--images` photographs of `--size` px from the bundled ones (seeded
crops and flips), and restores them through model.onnx four ways, each in a fresh `elir-edge restore`
process, one after another on the same cores: one process with 1 thread, one process with 2 threads,
`--ray` with 1 actor and with 2 actors (1 thread each, a Ray started by the command). Per run: the wall
time of the whole command, the restore's own images/s (start-up included), its steady images/s (between
the first and the last result: every worker running) and, for Ray, its overhead per image against the best
single-process run. The outputs of every run are compared byte for byte with the first.
Goal: Ray with 2 actors >= 0.9x the best single-process throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from elir_edge.common.images import list_images, read_rgb
from elir_edge.common.tables import table
from elir_edge.demo import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from elir_edge.exporter.stage import ExportOptions, export_checkpoint

RUNS = {"1 process, 1 thread": ["--threads", "1"], "1 process, 2 threads": ["--threads", "2"],
        "--ray, 1 actor x 1 thread": ["--ray", "--actors", "1", "--threads", "1"],
        "--ray, 2 actors x 1 thread": ["--ray", "--actors", "2", "--threads", "1"]}


def make_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """Seeded crops (and flips) of the bundled photographs, `size` px square."""
    rng = np.random.default_rng(seed)
    photos = [read_rgb(p) for p in list_images(HELDOUT_DIR) + list_images(CALIBRATION_DIR)]
    folder.mkdir(parents=True)
    for i in range(n):
        img = photos[i % len(photos)]
        if min(img.shape[:2]) < size:
            img = np.asarray(Image.fromarray(img).resize((max(size, img.shape[1]), max(size, img.shape[0]))))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        Image.fromarray(crop[:, ::-1] if rng.random() < 0.5 else crop).save(folder / f"{i:04d}.png")


def run(model: Path, images: Path, out: Path, extra: list[str]) -> dict:
    report = out.with_suffix(".jsonl")
    cmd = [sys.executable, "-m", "elir_edge.cli", "restore", str(model), str(images), "-o", str(out), "-q",
           "--report", str(report), *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    head = json.loads(report.read_text().splitlines()[0])
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(out.glob("*.png")))).hexdigest()
    return {"command": " ".join(["elir-edge", *cmd[3:]]), "wall_s": wall, "images_per_s": head["images_per_s"],
            "steady_images_per_s": head["steady_images_per_s"], "restored": head["inputs"], "outputs_sha256": digest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        export_checkpoint(CHECKPOINT, ExportOptions(output=d / "export", image_size=(args.size, args.size)), quiet=True)
        make_images(d / "images", args.images, args.size)
        results = {name: run(d / "export" / "model.onnx", d / "images", d / f"out{i}", extra)
                   for i, (name, extra) in enumerate(RUNS.items())}
    best = max(r["steady_images_per_s"] for n, r in results.items() if not n.startswith("--ray"))
    for name, r in results.items():
        r["identical_to_first"] = r["outputs_sha256"] == next(iter(results.values()))["outputs_sha256"]
        r["steady_vs_best_single"] = r["steady_images_per_s"] / best
        r["overhead_ms_per_image"] = 1000 * (1 / r["steady_images_per_s"] - 1 / best) if name.startswith("--ray") else None
    rows = [[n, f"{r['wall_s']:.1f}", f"{r['images_per_s']:.2f}", f"{r['steady_images_per_s']:.2f}",
             f"{r['steady_vs_best_single']:.2f}x", "" if r["overhead_ms_per_image"] is None else
             f"{r['overhead_ms_per_image']:+.1f}", "yes" if r["identical_to_first"] else "NO"] for n, r in results.items()]
    print(table(rows, header=["run", "wall s", "img/s (all)", "img/s (steady)", "vs best single", "Ray ms/img",
                              "same PNGs"]))
    from elir_edge.bench.machine import machine

    record = {"images": args.images, "size": args.size, "machine": machine(False), "runs": results}
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
