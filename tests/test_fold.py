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


def test_collapse_folds_exactly_the_1x1_pairs_of_fmir_and_mmse_and_flattens_the_keys():
    """Worked out on a hand-made checkpoint: fmir's `.block.2`+`.block.3` and mmse's `.block.0`+`.block.1` pairs
    fold (when the second is a 1x1 conv), a 3x3 second conv or another part's 1x1 stays as it is, and every key
    comes back under its part's name (issue 33: mutmut's survivors)."""
    from types import SimpleNamespace

    from elir_edge.model.fold import collapse

    g = torch.Generator().manual_seed(0)

    def conv(o, i, k):
        return torch.randn(o, i, k, k, generator=g), torch.randn(o, generator=g)

    (fw1, fb1), (fw2, fb2) = conv(6, 4, 3), conv(5, 6, 1)
    (mw1, mb1), (mw2, mb2) = conv(6, 4, 3), conv(3, 6, 1)
    (kw1, kb1), (kw2, kb2) = conv(6, 4, 3), conv(6, 6, 3)  # a 3x3 after the first conv: not a pair
    dw, db = conv(2, 2, 1)
    parts = {"fmir": {"a.block.2.weight": fw1, "a.block.2.bias": fb1, "a.block.3.weight": fw2, "a.block.3.bias": fb2,
                      "k.block.2.weight": kw1, "k.block.2.bias": kb1, "k.block.3.weight": kw2, "k.block.3.bias": kb2},
             "mmse": {"m.block.0.weight": mw1, "m.block.0.bias": mb1, "m.block.1.weight": mw2, "m.block.1.bias": mb2},
             "dec": {"d.block.1.weight": dw, "d.block.1.bias": db}}
    flat, n = collapse(SimpleNamespace(parts=parts))
    assert n == 2
    assert set(flat) == {"fmir.a.block.2.weight", "fmir.a.block.2.bias", "fmir.k.block.2.weight",
                         "fmir.k.block.2.bias", "fmir.k.block.3.weight", "fmir.k.block.3.bias", "mmse.m.block.0.weight",
                         "mmse.m.block.0.bias", "dec.d.block.1.weight", "dec.d.block.1.bias"}
    for (w, b), (w1, b1, w2, b2) in (((flat["fmir.a.block.2.weight"], flat["fmir.a.block.2.bias"]), (fw1, fb1, fw2, fb2)),
                                     ((flat["mmse.m.block.0.weight"], flat["mmse.m.block.0.bias"]), (mw1, mb1, mw2, mb2))):
        x = torch.randn(1, 4, 7, 9, generator=g, dtype=torch.float64)  # the pair run in float64: the folded conv
        two = F.conv2d(F.conv2d(x, w1.double(), b1.double(), padding=1), w2.double(), b2.double())
        assert w.dtype == b.dtype == torch.float32
        assert (F.conv2d(x, w.double(), b.double(), padding=1) - two).abs().max() < 1e-5 * two.abs().max()
    assert flat["fmir.k.block.3.weight"] is kw2 and flat["dec.d.block.1.weight"] is dw
    assert parts["fmir"]["a.block.3.weight"] is fw2  # the checkpoint's own dicts are left as they were
