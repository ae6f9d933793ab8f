import pytest
import torch

from elir_edge.errors import UserError
from elir_edge.model.arch import build_elir
from elir_edge.model.checkpoint import load_checkpoint
from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.settings import parse_image_size, resolve_settings
from elir_edge.model.synthetic import random_model, save_checkpoint


@pytest.mark.parametrize("task", ["bfr", "sr", "bsr"])
@pytest.mark.parametrize("fmt", ["release", "training"])
def test_arch_read_off_shapes(tmp_path, task, fmt):
    arch = preset_arch(task, overparam=fmt == "training")
    path = save_checkpoint(build_elir(arch, 3, 0.1), tmp_path / "m.bin", fmt)  # suffix says nothing; the shapes
    # are what is read: weights initialised, not scaled on a probe image as random_model's are
    ckpt = load_checkpoint(path)
    assert ckpt.format == fmt
    assert ckpt.arch == arch
    assert len(ckpt.sha256) == 64


def test_custom_widths_and_variant(tmp_path):
    from elir_edge.model.arch import ArchConfig

    arch = ArchConfig(latent_channels=8, ae_width=32, unet_hid=64, ch_mult=(1, 2, 2), n_mid_blocks=2,
                      use_rescale_conv=False, rrdb_hid=24, n_rrdb=2, mmse_overparam=True)
    ckpt = load_checkpoint(save_checkpoint(random_model(arch), tmp_path / "c.pth", "release"))
    assert ckpt.arch == arch


def test_task_inference_and_contradiction():
    bfr, sr, bsr = preset_arch("bfr"), preset_arch("sr"), preset_arch("bsr")
    assert resolve_settings(bfr).task == "bfr"
    assert resolve_settings(bsr).k_steps == 3 and resolve_settings(bsr).sigma_s == 0.04
    with pytest.raises(UserError, match="sr, denoising, inpainting"):
        resolve_settings(sr)
    s = resolve_settings(sr, task="denoising")
    assert (s.k_steps, s.sigma_s, s.height) == (3, 0.025, 256)
    with pytest.raises(UserError, match="contradicts"):
        resolve_settings(sr, task="bfr")
    s = resolve_settings(bfr, steps=2, sigma=0.0, image_size=(64, 96), batch=2)
    assert (s.k_steps, s.sigma_s, s.height, s.width, s.batch) == (2, 0.0, 64, 96, 2)
    assert resolve_settings(sr, hyper={"task": "inpainting"}).task == "inpainting"


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "at least one Euler step"),
    (dict(image_size=(100, 128)), "multiple of 32"),
    (dict(sigma=-1.0), ">= 0"),
    (dict(batch=0), "at least 1"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(UserError, match=match):
        resolve_settings(preset_arch("bfr"), **kwargs)


def test_parse_image_size():
    assert parse_image_size("256") == (256, 256)
    assert parse_image_size("256x384") == (256, 384)
    for bad in ("abc", "1x2x3", "0"):
        with pytest.raises(UserError):
            parse_image_size(bad)


def test_all_presets_resolve_with_task():
    for name, p in PRESETS.items():
        s = resolve_settings(preset_arch(name), task=name)
        assert (s.k_steps, s.sigma_s, s.height) == (p.k_steps, p.sigma_s, p.image_size)


# Key names and shapes written out from ../shared/ELIR_SPEC.md (the reference code's state dict), for the
# bsr preset (U-Net hid 96): the loader must accept exactly these names and the model must have them.
H = 96
SPEC_KEYS = {
    "enc.layers.0.weight": (64, 3, 3, 3), "enc.layers.1.conv.0.weight": (64, 64, 3, 3),
    "enc.layers.1.conv.4.bias": (64,), "enc.layers.2.weight": (64, 64, 3, 3), "enc.layers.14.weight": (16, 64, 3, 3),
    "dec.layers.0.weight": (64, 16, 3, 3), "dec.layers.2.conv.2.weight": (64, 64, 3, 3),
    "dec.layers.6.weight": (64, 64, 3, 3), "dec.layers.17.conv.0.weight": (64, 64, 3, 3),
    "dec.layers.18.weight": (3, 64, 3, 3), "dec.layers.18.bias": (3,),
    "mmse.lrm.0.RDB1.conv1.block.0.weight": (96, 16, 3, 3), "mmse.lrm.0.RDB1.conv4.block.0.weight": (96, 16 + 3 * 96, 3, 3),
    "mmse.lrm.2.RDB3.conv5.block.0.weight": (16, 16 + 4 * 96, 3, 3),
    "fmir.time_mlp.linear1.weight": (640, 160), "fmir.time_mlp.linear2.weight": (640, 640),
    "fmir.first_proj.weight": (H, 16, 1, 1),
    "fmir.down_blocks.0.0.block1.block.0.weight": (H,), "fmir.down_blocks.0.0.block1.block.2.weight": (H, H, 3, 3),
    "fmir.down_blocks.0.0.mlp.1.weight": (H, 640), "fmir.down_blocks.0.0.conv2d.weight": (H, H, 1, 1),
    "fmir.down_blocks.1.1.conv.weight": (2 * H, H, 3, 3), "fmir.down_blocks.3.1.conv.weight": (4 * H, 2 * H, 3, 3),
    "fmir.mid_blocks.0.block2.block.2.weight": (4 * H, 4 * H, 3, 3),
    "fmir.up_blocks.0.0.convtr.weight": (4 * H, 2 * H, 4, 4),
    "fmir.up_blocks.0.1.block1.block.2.weight": (2 * H, 4 * H, 3, 3),
    "fmir.up_blocks.2.0.convtr.weight": (2 * H, H, 4, 4),
    "fmir.final_block.block.0.weight": (H,), "fmir.final_block.block.2.weight": (H, H, 3, 3),
    "fmir.final_proj.weight": (16, H, 1, 1),
}
# Parameter counts of the spec's preset table (millions, as rounded there).
SPEC_PARAMS = {"bfr": 29.6, "sr": 18.9, "bsr": 11.1}


def test_official_key_names_and_shapes():
    sd = build_elir(preset_arch("bsr"), 3, 0.04).state_dict()
    assert {k: tuple(sd[k].shape) for k in SPEC_KEYS if k in sd} == SPEC_KEYS
    assert "enc.layers.2.bias" not in sd and "dec.layers.6.bias" not in sd  # stride/upsample convs: no bias
    for task, millions in SPEC_PARAMS.items():
        model = build_elir(preset_arch(task), 3, 0.1)
        count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
        assert round(count(model.fmir), 1) == millions, task
        assert round(count(model.mmse), 1) == 5.5 and round(count(model.enc), 2) == 1.23
        assert round(count(model.dec), 2) == 1.23


def test_training_format_keys_of_the_spec(tmp_path):
    """Training checkpoints: un-prefixed state_dict_<part>, a 1x1 `block.3` after fmir's 3x3 and a
    `block.1` after mmse's, with 4x hidden width."""
    path = save_checkpoint(random_model(preset_arch("bsr", overparam=True)), tmp_path / "t.ckpt", "training")
    raw = torch.load(path, weights_only=True)
    f, m = raw["state_dict_fmir"], raw["state_dict_mmse"]
    assert f["down_blocks.0.0.block1.block.2.weight"].shape == (4 * H, H, 3, 3)
    assert f["down_blocks.0.0.block1.block.3.weight"].shape == (H, 4 * H, 1, 1)
    assert m["lrm.0.RDB1.conv1.block.0.weight"].shape == (4 * 96, 16, 3, 3)
    assert m["lrm.0.RDB1.conv1.block.1.weight"].shape == (96, 4 * 96, 1, 1)
    ckpt = load_checkpoint(path)
    assert ckpt.format == "training" and ckpt.arch == preset_arch("bsr", overparam=True)
