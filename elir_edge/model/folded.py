"""The collapsed, looped model and its unrolled graph, from a checkpoint or from an export folder.

An export folder keeps the folded weights (`weights.safetensors`) and `manifest.json`, so the later
stages rebuild the model without the original checkpoint.
"""

from __future__ import annotations

from elir_edge.errors import UserError
from elir_edge.model.arch import ArchConfig, Elir, build_elir
from elir_edge.model.checkpoint import Checkpoint
from elir_edge.model.export_folder import WEIGHTS, ExportFolder
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


def load_folded(folder: ExportFolder) -> Elir:
    """Rebuild the collapsed looped model from an export folder, without the original checkpoint."""
    from safetensors.torch import load

    s = folder.settings
    weights = folder.verified(WEIGHTS)
    try:
        state = load(weights.read_bytes())
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise UserError(f"{weights} cannot be read as folded weights ({type(e).__name__}): export the checkpoint "
                        "again") from None
    return build_elir(ArchConfig.from_dict(folder.arch), s.k_steps, s.sigma_s, state)
