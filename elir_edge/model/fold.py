"""Fold the over-parameterized 3x3 conv + 1x1 conv pairs into single 3x3 convs, on the weights."""

from __future__ import annotations

import re

import torch

from elir_edge.model.checkpoint import Checkpoint

# (first conv, the 1x1 after it) inside each collapsible block, per module, as state-dict key stems.
_PAIRS = {"fmir": (re.compile(r"(.*\.block)\.3\.weight$"), 2, 3),
          "mmse": (re.compile(r"(.*\.block)\.1\.weight$"), 0, 1)}


def fold_pair(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor):
    """W[o,i] = sum_m W2[o,m] W1[m,i]; b = W2 b1 + b2 (computed in float64, returned as float32)."""
    w2m = w2.double()[:, :, 0, 0]
    w = torch.einsum("om,mikl->oikl", w2m, w1.double())
    b = w2m @ b1.double() + b2.double()
    return w.float(), b.float()


def collapse_parts(parts: dict[str, dict]) -> tuple[dict[str, dict], int]:
    """Return the collapsed state dicts and how many pairs were folded."""
    out, folded = {}, 0
    for part, sd in parts.items():
        sd = dict(sd)
        if part in _PAIRS:
            rx, i1, i2 = _PAIRS[part]
            for key in [k for k in sd if rx.match(k) and sd[k].dim() == 4 and sd[k].shape[-1] == 1]:
                stem = rx.match(key).group(1)
                w, b = fold_pair(sd.pop(f"{stem}.{i1}.weight"), sd.pop(f"{stem}.{i1}.bias"),
                                 sd.pop(f"{stem}.{i2}.weight"), sd.pop(f"{stem}.{i2}.bias"))
                sd[f"{stem}.{i1}.weight"], sd[f"{stem}.{i1}.bias"] = w, b
                folded += 1
        out[part] = sd
    return out, folded


def collapse(ckpt: Checkpoint) -> tuple[dict[str, torch.Tensor], int]:
    """The flat state dict of the collapsed model (loads into `ckpt.arch.collapsed()`)."""
    parts, n = collapse_parts(ckpt.parts)
    return {f"{p}.{k}": v for p, sd in parts.items() for k, v in sd.items()}, n
