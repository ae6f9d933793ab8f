"""`elir-edge restore`: run an exported artifact on a user's images of any size."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from elir_edge.common.files import ensure_writable_dir
from elir_edge.common.images import (
    SUFFIXES,
    UNREADABLE,
    read_rgb,
    save_png,
    to_chw,
    to_uint8,
    written_by_us,
)
from elir_edge.errors import UserError
from elir_edge.model.export_folder import FLOAT
from elir_edge.restore.strip import write_strip
from elir_edge.restore.tiling import restore_tiled, restore_whole
from elir_edge.runtime.open import RunnerOptions, open_runner
from elir_edge.runtime.probe import refuse_if_wrong

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
    runtime: str = "ort"  # for .onnx artifacts: ort or openvino


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
    artifact, out_dir = Path(artifact), Path(opts.output)
    files = collect_inputs(inputs)
    ensure_writable_dir(out_dir)
    run_opts = RunnerOptions(runtime=opts.runtime, threads=opts.threads)
    with open_runner(artifact, run_opts) as runner:
        refuse_if_wrong(runner, lambda p: open_runner(p, run_opts))
        return _restore(artifact, files, out_dir, runner, opts, progress)


def _restore(artifact: Path, files: list[Path], out_dir: Path, runner, opts: RestoreOptions, progress: bool) -> dict:
    from tqdm import tqdm

    interface = runner.interface
    if interface.int8_cpu_form and not runner.on_gpu:
        from elir_edge.runtime.cpu_roof import cpu_features

        features = cpu_features()
        if not features["int8_dot_product"]:
            warnings.warn(f"this CPU has no int8 dot-product instruction (no VNNI/AMX): int8 convolutions gain "
                          f"little over fp32 on such CPUs, so {artifact.parent / FLOAT} may be about as fast, and "
                          "exact (`elir-edge bench` measures both here)", stacklevel=2)
    task = opts.task or interface.task
    if task is None:
        raise UserError(f"{artifact} carries no task metadata (not made by elir-edge): pass --task")
    gh, gw, latent = interface.height, interface.width, interface.latent_channels
    tile = opts.tile or (gh if task == "bsr" else None)
    if tile is not None:
        if gh is not None and (tile != gh or tile != gw):
            raise UserError(f"--tile {tile} differs from the graph's fixed input {gh}x{gw}: use --tile {gh}, "
                            "or export with --dynamic")
        if tile % 32 or not 0 <= opts.overlap < tile:
            raise UserError(f"--tile {tile} --overlap {opts.overlap}: the tile must be a multiple of 32 and "
                            "the overlap smaller than the tile")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = OutputNames(out_dir, files)
    done, failed, renamed = [], [], []
    for path in tqdm(files, desc="restore", unit="img", disable=not progress):
        try:
            img = read_rgb(path)
        except UNREADABLE as e:
            warnings.warn(f"skipped {path}: not a readable image ({type(e).__name__}: {str(e)[:80]})", stacklevel=2)
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
        target, moved = names.target(path, "")
        if moved:
            renamed.append(str(target))
            warnings.warn(f"{moved}: wrote {target.name} instead", stacklevel=2)
        save_png(result, target)
        if opts.compare:
            compare, _ = names.target(path, "_compare")
            write_strip({"input": [img], "restored": [result]}, compare)
        done.append(str(target))
    return {"restored": done, "failed": failed, "renamed": renamed, "task": task, "tile": tile,
            "artifact": str(artifact)}


class OutputNames:
    """Where each restored image goes: `<stem><suffix>.png` in the output folder, unless that path is one of
    the inputs, was already written in this run, or holds a file elir-edge did not write; then the first
    free `<stem><suffix>.restored[-N].png`. Inputs and a user's own files are never replaced."""

    def __init__(self, folder: Path, inputs: list[Path]):
        self.folder, self.inputs, self.taken = folder, {p.resolve() for p in inputs}, set()

    def _blocked(self, p: Path) -> str | None:
        if p.resolve() in self.inputs:
            return f"{p} is one of the inputs"
        if p.resolve() in self.taken:
            return f"{p} was already written by this run (two inputs share the name {p.stem})"
        if p.exists() and not written_by_us(p):
            return f"{p} exists and was not written by elir-edge"
        return None

    def target(self, source: Path, suffix: str) -> tuple[Path, str | None]:
        p, n = self.folder / f"{source.stem}{suffix}.png", 0
        why = blocked = self._blocked(p)
        while blocked:
            n += 1
            p = self.folder / f"{source.stem}{suffix}.restored{'' if n == 1 else f'-{n}'}.png"
            blocked = self._blocked(p)
        self.taken.add(p.resolve())
        return p, why
