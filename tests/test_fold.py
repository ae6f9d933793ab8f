import torch
import torch.nn.functional as F
from conftest import SMALL

from elir_edge.model.arch import build_elir
from elir_edge.model.checkpoint import infer_arch
from elir_edge.model.fold import collapse_parts, fold_pair
from elir_edge.model.synthetic import random_model


def test_fold_pair_equals_conv_then_1x1():
    torch.manual_seed(1)
    w1, b1 = torch.randn(48, 8, 3, 3), torch.randn(48)
    w2, b2 = torch.randn(12, 48, 1, 1), torch.randn(12)
    x = torch.randn(2, 8, 17, 13)
    two = F.conv2d(F.conv2d(x, w1, b1, padding=1), w2, b2)
    w, b = fold_pair(w1, b1, w2, b2)
    one = F.conv2d(x, w, b, padding=1)
    assert w.shape == (12, 8, 3, 3)
    assert (one - two).abs().max() < 1e-4 * two.abs().max()


def test_collapsed_model_matches_overparameterized():
    arch = SMALL.__class__(**{**SMALL.to_dict(), "ch_mult": SMALL.ch_mult, "fmir_overparam": True,
                               "mmse_overparam": True})
    over = random_model(arch)
    parts = {p: getattr(over, p).state_dict() for p in ("fmir", "mmse", "enc", "dec")}
    collapsed, n = collapse_parts(parts)
    # each ResnetBlock has 2 blocks + final block; each RDB 5 convs
    n_res = len(over.fmir.resnet_blocks())
    assert n == 2 * n_res + 1 + 5 * 3 * arch.n_rrdb
    assert not infer_arch(collapsed).overparam
    folded = build_elir(arch.collapsed(), 3, 0.1, {f"{p}.{k}": v for p, sd in collapsed.items() for k, v in sd.items()})
    lq, eps = torch.rand(2, 3, 64, 96), torch.randn(2, 16, 8, 12)
    with torch.no_grad():
        a, b = over.latent_flow(lq, eps)[-1], folded.latent_flow(lq, eps)[-1]
    assert (a - b).abs().max() < 1e-4
    # weights shrink: the 1x1 convs are gone and the 4x hidden width with them
    params = lambda m: sum(p.numel() for p in m.parameters())
    assert params(folded) < params(over) / 2
