"""`elir-edge restore`: run an exported artifact on a user's images of any size."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from elir_edge.common.images import SUFFIXES, read_rgb, save_png, to_chw, to_uint8
from elir_edge.errors import UserError
from elir_edge.restore.strip import write_strip
from elir_edge.restore.tiling import restore_tiled, restore_whole
from elir_edge.runtime.interface import graph_size, read_interface
from elir_edge.runtime.open import open_runner

UPSCALE = {"sr": 8, "bsr": 4}  # super-resolution inputs are bicubic-upscaled first, as the reference does


@dataclass
class RestoreOptions:
    output: Path
    task: str | None = None
    tile: int | None = None
    overlap: int = 32
    seed: int = 0
    batch: int = 1
    compare: bool = False
    threads: int | None = None


def collect_inputs(inputs: list[Path]) -> list[Path]:
    files = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or folder: give image files or folders of images")
    if not files:
        raise UserError("no images found in the inputs: give image files or folders of images")
    return files


def restore_images(artifact: Path, inputs: list[Path], opts: RestoreOptions, progress: bool = True) -> dict:
    from tqdm import tqdm

    artifact = Path(artifact)
    files = collect_inputs(inputs)
    runner = open_runner(artifact, opts.threads)
    meta, shapes = read_interface(runner.graph_path)
    task = opts.task or meta.get("task")
    if task is None:
        raise UserError(f"{artifact} carries no task metadata (not made by elir-edge): pass --task")
    gh, gw, latent = graph_size(shapes)
    tile = opts.tile or (gh if task == "bsr" else None)
    if tile is not None:
        if gh is not None and (tile != gh or tile != gw):
            raise UserError(f"--tile {tile} differs from the graph's fixed input {gh}x{gw}: use --tile {gh}, "
                            "or export with --dynamic")
        if tile % 32 or not 0 <= opts.overlap < tile:
            raise UserError(f"--tile {tile} --overlap {opts.overlap}: the tile must be a multiple of 32 and "
                            "the overlap smaller than the tile")
    opts.output.mkdir(parents=True, exist_ok=True)
    done, failed = [], []
    for path in tqdm(files, desc="restore", unit="img", disable=not progress):
        try:
            img = read_rgb(path)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            warnings.warn(f"skipped {path}: not a readable image ({type(e).__name__})", stacklevel=2)
            failed.append(str(path))
            continue
        if task in UPSCALE:
            f = UPSCALE[task]
            img = np.asarray(Image.fromarray(img).resize((img.shape[1] * f, img.shape[0] * f), Image.BICUBIC))
        if tile is None:
            size = (gw or img.shape[1] // 32 * 32 or 32, gh or img.shape[0] // 32 * 32 or 32)
            img = np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))
            out = restore_whole(to_chw(img), runner, latent, opts.seed)
        else:
            out = restore_tiled(to_chw(img), runner, tile, opts.overlap, latent, opts.seed, opts.batch)
        result = to_uint8(out)
        target = opts.output / (path.stem + ".png")
        save_png(result, target)
        if opts.compare:
            write_strip({"input": [img], "restored": [result]}, opts.output / (path.stem + "_compare.png"))
        done.append(str(target))
    return {"restored": done, "failed": failed, "task": task, "tile": tile, "artifact": str(artifact)}
