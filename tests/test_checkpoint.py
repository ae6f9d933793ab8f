import pytest

from elir_edge.errors import UserError
from elir_edge.model.checkpoint import load_checkpoint
from elir_edge.model.presets import PRESETS
from elir_edge.model.settings import parse_image_size, resolve_settings
from elir_edge.model.synthetic import preset_arch, random_model, save_checkpoint


@pytest.mark.parametrize("task", ["bfr", "sr", "bsr"])
@pytest.mark.parametrize("fmt", ["release", "training"])
def test_arch_read_off_shapes(tmp_path, task, fmt):
    arch = preset_arch(task, overparam=fmt == "training")
    path = save_checkpoint(random_model(arch), tmp_path / "m.bin", fmt)  # suffix says nothing
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
