"""Bugs planted on purpose, to show the suite notices them (tests/test_mutations.py).

Each mutant patches the code under test the way a real bug would change it (the reference model in
`model/arch/` stays right unless the bug is in it) and names the tests that must then fail. The
conftest plants the mutant named by ELIR_EDGE_MUTANT before any test runs.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx import numpy_helper


def _steps_at_t0(mp):
    import elir_edge.model.unroll as unroll

    real = unroll.time_embedding
    mp.setattr(unroll, "time_embedding", lambda t, dim: real(0.0, dim))


def _step_dropped(mp):
    from elir_edge.model.unroll import UnrolledElir

    real = UnrolledElir.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        self.steps = self.steps[:-1]

    mp.setattr(UnrolledElir, "__init__", init)


def _time_scale_x100(mp):
    import math

    import elir_edge.model.arch as arch
    import elir_edge.model.arch.elir as elir
    import elir_edge.model.unroll as unroll

    def wrong(t, dim, device=None):  # the reference's embedding with 100 where the spec says 1000
        half = dim // 2
        freqs = torch.exp(torch.arange(half, device=device).float() * -(math.log(10000) / (half - 1)))
        t = torch.full((1,), t, device=device) if isinstance(t, float) else t.reshape(-1).float()
        arg = 100 * t.unsqueeze(1) * freqs.to(t.device).unsqueeze(0)
        return torch.cat((arg.cos(), arg.sin()), dim=-1)

    for mod in (arch, elir, unroll):
        mp.setattr(mod, "time_embedding", wrong)


def _sigma_ignored(mp):
    from elir_edge.model.unroll import UnrolledElir

    real = UnrolledElir.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        self.sigma_s = 0.0

    mp.setattr(UnrolledElir, "__init__", init)


def _fold_drops_bias(mp):
    import elir_edge.model.fold as fold

    def fold_pair(w1, b1, w2, b2):
        w2m = w2.double()[:, :, 0, 0]
        return torch.einsum("om,mikl->oikl", w2m, w1.double()).float(), (w2m @ b1.double()).float()

    mp.setattr(fold, "fold_pair", fold_pair)


def _qdq_scale_x2(mp):
    import elir_edge.quantize.qdq_rewrite as rw

    real = rw.fold_weight_quantizers

    def doubled(model, weight_bits=8):
        real(model, weight_bits)
        inits = {i.name: i for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "DequantizeLinear" and n.input[0] in inits:
                s = inits[n.input[1]]
                s.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(s) * np.float32(2), s.name))

    mp.setattr(rw, "fold_weight_quantizers", doubled)


EXPORT_TESTS = ["tests/test_unroll.py", "tests/test_export.py"]

# name -> (what the bug is, how to plant it, the tests that must turn red)
MUTANTS = {
    "steps_at_t0": ("every Euler step evaluated at t = 0", _steps_at_t0, EXPORT_TESTS),
    "step_dropped": ("the last Euler step dropped", _step_dropped, EXPORT_TESTS),
    "time_scale_x100": ("time embedding scaled x100 instead of x1000", _time_scale_x100, ["tests/test_unroll.py"]),
    "sigma_ignored": ("sigma_s ignored (no noise added to the coarse estimate)", _sigma_ignored, EXPORT_TESTS),
    "fold_drops_bias": ("folding drops the 1x1 conv's bias", _fold_drops_bias, ["tests/test_fold.py", "tests/test_export.py"]),
    "qdq_scale_x2": ("weight Q/DQ scales off by 2x", _qdq_scale_x2, ["tests/test_quantize.py"]),
}
