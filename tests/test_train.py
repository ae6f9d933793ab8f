"""The paper's training objective: with the exact velocity of the flow-matching path the consistency terms
vanish, and with a wrong field they do not; the auto-encoder stage lowers its loss."""

import pytest
import torch
import torch.nn.functional as F
from conftest import SMALL

from elir_edge.model.arch import build_elir
from elir_edge.train import CropSampler, TrainConfig, elir_loss, train_autoencoder


class ExactVelocity(torch.nn.Module):
    """The linear path z_s = (1 - (1 - smin) s) z0 + s z_hq moves at v = z_hq - (1 - smin) z0; recover s
    from the embedding's slowest frequency (1e-4: cos(0.1 s), sin(0.1 s)) and z0 from z_s."""

    def __init__(self, z_hq: torch.Tensor, smin: float, dim: int):
        super().__init__()
        self.z_hq, self.smin, self.half = z_hq, smin, dim // 2

    def forward(self, z, emb):
        s = torch.atan2(emb[:, -1], emb[:, self.half - 1]).reshape(-1, 1, 1, 1) / (1000 * 1e-4)
        z0 = (z - s * self.z_hq) / (1 - (1 - self.smin) * s)
        return self.z_hq - (1 - self.smin) * z0


class Halved(torch.nn.Module):
    def __init__(self, field):
        super().__init__()
        self.field = field

    def forward(self, z, emb):
        return 0.5 * self.field(z, emb)


def _setup():
    torch.manual_seed(0)
    cfg = TrainConfig(arch=SMALL, k_steps=3, sigma_s=0.1)
    model = build_elir(SMALL, 3, 0.1)
    x_hq, x_lq = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    return cfg, model, x_hq, x_lq


def test_consistency_terms_vanish_for_the_exact_velocity():
    cfg, model, x_hq, x_lq = _setup()
    teacher = model.enc
    with torch.no_grad():
        z_hq = teacher(x_hq)
        mmse_term = F.mse_loss(model.mmse(model.enc(x_lq)), z_hq)
        model.fmir = ExactVelocity(z_hq, cfg.sigma_min, cfg.arch.t_emb_dim)
        loss = elir_loss(model, teacher, x_hq, x_lq, cfg)
        pixel = cfg.beta * F.mse_loss(model.dec(z_hq), x_hq)  # the path ends at z_hq + smin * z0
    assert float(loss) == pytest.approx(float(mmse_term + pixel), rel=1e-3)


def test_a_wrong_velocity_is_penalised():
    """Flow-matching part of the loss (beta = 0, the coarse estimator's term subtracted): ~0 for the exact
    field, clearly positive for half of it."""
    cfg, model, x_hq, x_lq = _setup()
    cfg.beta = 0.0
    with torch.no_grad():
        z_hq = model.enc(x_hq)
        mmse_term = float(F.mse_loss(model.mmse(model.enc(x_lq)), z_hq))
        cfm = {}
        for name, field in (("exact", ExactVelocity(z_hq, cfg.sigma_min, cfg.arch.t_emb_dim)),
                            ("halved", Halved(ExactVelocity(z_hq, cfg.sigma_min, cfg.arch.t_emb_dim)))):
            model.fmir = field
            torch.manual_seed(3)
            cfm[name] = float(elir_loss(model, model.enc, x_hq, x_lq, cfg)) - mmse_term
    assert abs(cfm["exact"]) < 1e-6 * mmse_term + 1e-9
    assert cfm["halved"] > 1e-4 * float((z_hq ** 2).mean())


def test_autoencoder_stage_lowers_its_loss():
    torch.manual_seed(0)
    rng_img = torch.Generator().manual_seed(1)
    images = [(torch.rand(3, 8, 8, generator=rng_img).repeat_interleave(8, 1).repeat_interleave(8, 2) * 255)
              .byte().permute(1, 2, 0).numpy() for _ in range(3)]
    cfg = TrainConfig(arch=SMALL, ae_steps=40, ae_crop=32, ae_batch=4, ae_lr=2e-3)
    model = build_elir(SMALL, 3, 0.1)
    sampler = CropSampler(images, "denoising", 0)
    x = CropSampler(images, "denoising", 9).batch(8, 32, degraded=False)
    with torch.no_grad():
        before = F.mse_loss(model.dec(model.enc(x)), x)
    train_autoencoder(model, sampler, cfg, log_every=1000)
    with torch.no_grad():
        after = F.mse_loss(model.dec(model.enc(x)), x)
    assert after < 0.5 * before


def test_train_elir_returns_the_ema_of_the_trained_weights():
    """train_elir promises the EMA model: worked out here from the weights the training model held after each
    step (W_1 after the first step, then W = d W + (1 - d) W_k), with the decoder the frozen auto-encoder's.
    Caught: the initial weights returned, the raw (non-averaged) model returned, the EMA decay not cfg's."""
    import copy

    from elir_edge.train import train_elir

    torch.manual_seed(0)
    images = [(torch.rand(48, 48, 3, generator=torch.Generator().manual_seed(i)) * 255).byte().numpy()
              for i in range(2)]
    cfg = TrainConfig(arch=SMALL, k_steps=2, sigma_s=0.1, elir_steps=3, elir_crop=32, elir_batch=1, ema_decay=0.5)
    model = build_elir(SMALL, 2, 0.1).train()
    initial = copy.deepcopy(model.state_dict())
    sampler, held = CropSampler(images, "denoising", 0), []
    real_batch = sampler.batch
    sampler.batch = lambda *a, **k: held.append(copy.deepcopy(model.state_dict())) or real_batch(*a, **k)
    returned = train_elir(model, sampler, cfg, log_every=1000)
    steps = held[1:] + [model.state_dict()]  # the weights after step 1, 2, 3 (held[0]: before any step)
    assert len(steps) == cfg.elir_steps and not returned.training
    got = returned.state_dict()
    for key, w0 in initial.items():
        want = steps[0][key].double()
        for w in steps[1:]:
            want = cfg.ema_decay * want + (1 - cfg.ema_decay) * w[key].double()
        scale = float(want.abs().max()) + 1e-12
        assert float((got[key].double() - want).abs().max()) <= 1e-6 * scale, key
        if key.startswith("dec."):
            assert torch.equal(got[key], w0), key  # frozen: still the auto-encoder's decoder
    moved = [k for k in initial if not k.startswith("dec.") and not torch.equal(steps[-1][k], steps[-2][k])]
    assert moved  # the last step changed weights, so the EMA and the raw model differ there
