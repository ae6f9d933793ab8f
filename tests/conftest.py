"""Synthetic ELIR checkpoints of every preset's shapes, in both formats, for fast CPU tests."""

from __future__ import annotations

import pytest

from elir_edge.arch import ArchConfig
from elir_edge.synthetic import random_model, save_checkpoint

SMALL = ArchConfig(latent_channels=16, ae_width=32, unet_hid=32, ch_mult=(1, 2, 1, 2), n_mid_blocks=1,
                   rrdb_hid=16, n_rrdb=1)


@pytest.fixture
def small_ckpt(tmp_path):
    """A small over-parameterized training checkpoint (custom widths) and its model."""
    model = random_model(ArchConfig(**{**SMALL.to_dict(), "ch_mult": SMALL.ch_mult,
                                       "fmir_overparam": True, "mmse_overparam": True}))
    return save_checkpoint(model, tmp_path / "small.ckpt", "training"), model
