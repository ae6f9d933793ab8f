"""Unrolling is exact: the static graph follows the looped reference latent by latent, on test models whose
output spans its range (tolerances are fractions of that spread)."""

import math

import numpy as np
import pytest
import torch
from conftest import output_spread

from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.synthetic import random_model
from elir_edge.model.unroll import BakedNoiseElir, UnrolledElir


@pytest.mark.parametrize("task", list(PRESETS))
def test_unrolled_equals_looped(task):
    p = PRESETS[task]
    model = random_model(preset_arch(task), k=p.k_steps, sigma=p.sigma_s)
    unrolled = UnrolledElir(model).eval()
    lq, eps = torch.rand(1, 3, 64, 64), torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        ref_traj, got_traj = model.latent_flow(lq, eps), unrolled.latents(lq, eps)
        ref, got = model(lq, eps), unrolled(lq, eps)
    spread = output_spread(model)
    assert spread > 0.1  # the output moves with the input: a comparison of it means something
    assert len(got_traj) == p.k_steps + 1
    for r, g in zip(ref_traj, got_traj):
        assert (r - g).abs().max() < 1e-4 * r.std()
    assert (ref - got).abs().max() < 1e-4 * spread
    # no time MLP left, and the step modules share conv weights
    assert not any("time_mlp" in n for n, _ in unrolled.named_parameters())
    s0, s1 = unrolled.steps[0], unrolled.steps[-1]
    assert s0.mid_res[0].conv1.weight is s1.mid_res[0].conv1.weight
    assert s0.final_conv is not s1.final_conv and s0.final_conv.weight is s1.final_conv.weight
    names = [n for n, _ in unrolled.named_modules()]
    assert f"steps.{p.k_steps - 1}.final_proj" in names  # each step's modules are named by their step
    assert not torch.equal(s0.mid_res[0].conv1.bias, s1.mid_res[0].conv1.bias) or p.k_steps == 1


def test_baked_noise_is_a_constant():
    model = random_model(preset_arch("bsr"), k=3, sigma=0.04)
    noise = torch.randn(1, 16, 8, 8)
    unrolled = BakedNoiseElir(model, noise).eval()
    lq = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert (unrolled(lq) - model(lq, noise)).abs().max() < 1e-4 * output_spread(model)
        ref, got = model.latent_flow(lq, noise), unrolled.latents(lq)
        assert all((r - g).abs().max() < 1e-4 * r.std() for r, g in zip(ref, got))


def test_unrolling_folds_the_dense_blocks_scale_and_leaves_the_model_as_it_was():
    """ELIR_SPEC's RRDB: each dense block adds 0.2 x conv5's output. The unrolled estimator carries the 0.2 in conv5's
    weights and bias (no multiply left in the graph); the model it was made from keeps its own weights and scale."""
    model = random_model(preset_arch("sr"), k=2, sigma=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = [m for m in model.mmse.modules() if hasattr(m, "out_scale")]
    unrolled = UnrolledElir(model)
    folded = [m for m in unrolled.mmse.modules() if hasattr(m, "out_scale")]
    assert len(folded) == len(blocks) > 0
    for original, rdb in zip(blocks, folded):
        assert original.out_scale == 0.2 and rdb.out_scale == 1.0
        conv, conv5 = original.conv5.block[0], rdb.conv5.block[0]
        assert torch.equal(conv5.weight, conv.weight * 0.2) and torch.equal(conv5.bias, conv.bias * 0.2)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_overparameterized_model_is_refused():
    model = random_model(preset_arch("sr", overparam=True))
    with pytest.raises(ValueError, match="^unroll a collapsed model: fold the over-parameterized blocks first$"):
        UnrolledElir(model)


def test_time_embedding_follows_the_spec():
    """ELIR_SPEC: half = dim/2, f_i = exp(-i ln(10000) / (half - 1)), concat(cos(1000 t f), sin(1000 t f)),
    computed here with numpy in float64, independently of the code."""
    from elir_edge.model.arch import time_embedding

    dim = 160
    f = np.exp(-np.arange(dim // 2) * math.log(10000) / (dim // 2 - 1))
    for t in (0.0, 1 / 3, 0.4, 0.8):
        want = np.concatenate([np.cos(1000 * t * f), np.sin(1000 * t * f)])
        got = time_embedding(t, dim)[0].double().numpy()
        # float32 arguments of up to 1000 rad: about 1e-4 absolute rounding in the phase
        assert np.abs(got - want).max() < 2e-3, t
