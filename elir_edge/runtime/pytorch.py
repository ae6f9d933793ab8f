"""The looped PyTorch model as a runner: the reference the exported graphs are compared with."""

from __future__ import annotations

import numpy as np


class TorchRunner:
    kind = "PyTorch eager (looped)"

    def __init__(self, model, name: str = "pytorch"):
        self.model, self.name, self.needs_eps, self.on_gpu = model.eval(), name, True, False

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(lq), torch.from_numpy(eps)).numpy()
