"""`restore --ray` against one process on this machine (issues 23, 31): throughput, start-up, Ray's overhead per
image, and what planning a big archive costs the driver.

    python benchmarks/bench_ray.py [--images 200] [--size 256] [--repeats 3] [--json benchmarks/results/ray_restore.json]
    python benchmarks/bench_ray.py --planning 10000,100000 [--json benchmarks/results/ray_planning.json]

Exports the bundled demo model, cuts `--images` photographs of `--size` px from the bundled ones (seeded crops and
flips), and restores them through model.onnx five ways, each in a fresh `elir-edge restore` process, one after
another on the same cores: one process with 1 thread, with 2 threads, and with 2 workers of 1 thread
(`--workers 2`), `--ray` with 1 actor and with 2 actors (1 thread each, a Ray started by the command), `--repeats`
rounds with the ways taking turns. Per way (median, min and max over the rounds): the wall time of the whole
command, the restore's own images/s (start-up included), its steady images/s (between the first and the last
result: every worker running), its start-up two ways: the first PNG written (its file's time from the command's
launch: Python and the imports, then for Ray starting Ray, checking the nodes, starting the actors and one image)
and the first row back in the report (from the start of its work: for Ray, the end of a whole block of up to 16
images on one actor, `BLOCK` in cluster/ray_data.py, as Ray Data hands a block's rows back when the block is done)
and, for Ray, its overhead per image against the best single-process way. The outputs of every run are compared
byte for byte with the first.
Goals (issue 31): Ray with 2 actors >= 0.95x the best single-process steady throughput; start-up (Ray + actors,
read as the first PNG) <= 10 s.

`--planning N,M,...`: planning alone, on a synthetic archive of N tiny PNGs in folders of 1000, in a fresh
process: the driver's walk (folders' names: its whole share under --ray), the first shard planned (listed,
stat'ed, named: when one process can start its first image), every shard planned in one process, and the
process's peak memory growth.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
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
        "1 process, 2 workers x 1 thread": ["--workers", "2", "--threads", "1"],
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
    launched, t0 = time.time(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    pngs = sorted(out.glob("*.png"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in pngs)).hexdigest()
    return {"command": " ".join(["elir-edge", *cmd[3:]]), "wall_s": wall, "images_per_s": lines[0]["images_per_s"],
            "steady_images_per_s": lines[0]["steady_images_per_s"], "first_output_s": min(r["at_s"] for r in lines[1:]),
            "first_png_s": min(p.stat().st_mtime for p in pngs) - launched,
            "restored": lines[0]["inputs"], "outputs_sha256": digest}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def throughput(args) -> dict:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        export_checkpoint(CHECKPOINT, ExportOptions(output=d / "export", image_size=(args.size, args.size)), quiet=True)
        make_images(d / "images", args.images, args.size)
        rounds = [{name: run(d / "export" / "model.onnx", d / "images", d / f"out{k}_{i}", extra)
                   for i, (name, extra) in enumerate(RUNS.items())} for k in range(args.repeats)]
    first = rounds[0][next(iter(RUNS))]["outputs_sha256"]
    results = {name: {"command": rounds[0][name]["command"], "identical_to_first":
                      all(r[name]["outputs_sha256"] == first for r in rounds),
                      **{k: spread([r[name][k] for r in rounds]) for k in
                         ("wall_s", "images_per_s", "steady_images_per_s", "first_output_s", "first_png_s")}}
               for name in RUNS}
    best = max(r["steady_images_per_s"]["median"] for n, r in results.items() if not n.startswith("--ray"))
    for name, r in results.items():
        steady = r["steady_images_per_s"]["median"]
        r["steady_vs_best_single"] = steady / best
        r["overhead_ms_per_image"] = 1000 * (1 / steady - 1 / best) if name.startswith("--ray") else None
    rows = [[n, _med(r["wall_s"], 1), _med(r["images_per_s"]), _med(r["steady_images_per_s"]),
             _med(r["first_png_s"], 1), _med(r["first_output_s"], 1), f"{r['steady_vs_best_single']:.2f}x",
             "" if r["overhead_ms_per_image"] is None else f"{r['overhead_ms_per_image']:+.1f}",
             "yes" if r["identical_to_first"] else "NO"] for n, r in results.items()]
    print(table(rows, header=["run", "wall s", "img/s (all)", "img/s (steady)", "first PNG s", "first row s",
                              "vs best single", "Ray ms/img", "same PNGs"]))
    return {"images": args.images, "size": args.size, "repeats": args.repeats, "runs": results}


def _med(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


PLAN = """
import json, resource, sys, time
from pathlib import Path
from elir_edge.restore.plan import plan_shard, shards
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
plan = shards([Path(sys.argv[1])], Path(sys.argv[2]))
listed = time.perf_counter() - t0
first = plan_shard(plan[0], False)
to_first = time.perf_counter() - t0
n = len(first) + sum(len(plan_shard(s, False)) for s in plan[1:])
print(json.dumps({"files": n, "list_s": listed, "first_shard_s": to_first, "plan_s": time.perf_counter() - t0,
                  "peak_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def planning(sizes: list[int]) -> dict:
    """The driver's planning on archives of each size (tiny PNGs, 1000 a folder), each in a fresh process."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    out = {}
    with tempfile.TemporaryDirectory() as d:
        d, made = Path(d), 0
        for n in sorted(sizes):
            for i in range(made, n):
                folder = d / "archive" / f"{i // 1000:05d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{i:08d}.png").write_bytes(buf.getvalue())
            made = n
            (d / "out").mkdir(exist_ok=True)
            got = subprocess.run([sys.executable, "-c", PLAN, str(d / "archive"), str(d / "out")], check=True,
                                 capture_output=True, text=True)
            out[n] = json.loads(got.stdout)
            print(f"{n} files: the driver's walk {out[n]['list_s']:.2f} s, first shard planned at "
                  f"{out[n]['first_shard_s']:.2f} s, every shard in one process {out[n]['plan_s']:.1f} s, "
                  f"peak memory +{out[n]['peak_growth_mb']:.0f} MB", flush=True)
    return {"files": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--planning", help="comma-separated archive sizes: time the driver's planning instead")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from elir_edge.bench.machine import machine

    figures = planning([int(n) for n in args.planning.split(",")]) if args.planning else throughput(args)
    record = {"machine": machine(False), **figures}
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
