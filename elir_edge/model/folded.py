"""The collapsed, looped model and its unrolled graph, from a checkpoint or from an export folder.

An export folder keeps the folded weights (`weights.safetensors`) and `manifest.json`, so the later
stages rebuild the model without the original checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.model.arch import ArchConfig, Elir, build_elir
from elir_edge.model.checkpoint import Checkpoint
from elir_edge.model.fold import collapse
from elir_edge.model.noise import baked_noise
from elir_edge.model.settings import RunSettings
from elir_edge.model.unroll import BakedNoiseElir, UnrolledElir


def folded_model(ckpt: Checkpoint, s: RunSettings) -> tuple[Elir, int]:
    """The collapsed looped model and how many conv pairs were folded into it."""
    sd, n = collapse(ckpt)
    return build_elir(ckpt.arch.collapsed(), s.k_steps, s.sigma_s, sd), n


def build_unrolled(folded: Elir, s: RunSettings, baked_seed: int | None = None) -> UnrolledElir:
    if baked_seed is None:
        return UnrolledElir(folded).eval()
    return BakedNoiseElir(folded, baked_noise(s, folded.arch, baked_seed)).eval()


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise UserError(f"{folder} has no manifest.json: point at a folder written by `elir-edge export`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg}): export the model again") from None


def load_folded(folder: Path, manifest: dict) -> Elir:
    """Rebuild the collapsed looped model from an export folder, without the original checkpoint."""
    from safetensors.torch import load_file

    s = manifest["settings"]
    return build_elir(ArchConfig.from_dict(manifest["arch"]), s["k_steps"], s["sigma_s"],
                      load_file(str(folder / manifest["weights"]["file"])))
