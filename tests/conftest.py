"""Synthetic ELIR checkpoints of every preset's shapes, in both formats, for fast CPU tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.arch import ArchConfig
from elir_edge.model.synthetic import random_model, save_checkpoint
from elir_edge.quantize.stage import QuantizeOptions, quantize_export

SMALL = ArchConfig(latent_channels=16, ae_width=32, unet_hid=32, ch_mult=(1, 2, 1, 2), n_mid_blocks=1,
                   rrdb_hid=16, n_rrdb=1)


@pytest.fixture
def small_ckpt(tmp_path):
    """A small over-parameterized training checkpoint (custom widths) and its model."""
    model = random_model(ArchConfig(**{**SMALL.to_dict(), "ch_mult": SMALL.ch_mult,
                                       "fmir_overparam": True, "mmse_overparam": True}))
    return save_checkpoint(model, tmp_path / "small.ckpt", "training"), model


@pytest.fixture(scope="session")
def tiny_quantized(tmp_path_factory):
    """A tiny export quantized end to end (MCT PTQ on the CPU)."""
    tmp = tmp_path_factory.mktemp("q")
    model = random_model(SMALL, k=2, sigma=0.1)
    ckpt = save_checkpoint(model, tmp / "tiny.pth", "release")
    folder = tmp / "export"
    export_checkpoint(ckpt, ExportOptions(task="denoising", steps=2, image_size=(64, 64), output=folder), quiet=True)
    calib = tmp / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # smooth random images: something like photographs, not white noise
        img = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        Image.fromarray(img).save(calib / f"{i}.png")
    report = quantize_export(QuantizeOptions(model=folder, calib=calib, keep_float=["enc.layers.0"]), quiet=True)
    return folder, report
