"""Runners behind one interface: `runner(lq, eps) -> hq` on NCHW float32 numpy arrays.

The artifact's suffix picks the runner: .onnx -> ONNX Runtime; a torch model -> PyTorch (the looped
reference). Static-batch graphs are fed in chunks of their batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import UserError


class TorchRunner:
    def __init__(self, model: torch.nn.Module, name: str = "pytorch"):
        self.model, self.name, self.needs_eps = model.eval(), name, True

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(lq), torch.from_numpy(eps)).numpy()


class OrtRunner:
    def __init__(self, path: Path, threads: int | None = None):
        from .verify import ort_session

        self.path, self.name = Path(path), Path(path).name
        try:
            self.session = ort_session(self.path, threads)
        except Exception as e:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
            raise UserError(f"{path} cannot be loaded by ONNX Runtime ({str(e).splitlines()[0][:150]}): "
                            "re-export it with `elir-edge export`") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.needs_eps = "eps" in inputs
        b = inputs["lq"][0]
        self.batch = b if isinstance(b, int) else None

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        step = self.batch or len(lq)
        outs = []
        for i in range(0, len(lq), step):
            chunk = lq[i:i + step]
            n = len(chunk)
            feeds = {"lq": _pad(chunk, step)}
            if self.needs_eps:
                feeds["eps"] = _pad(eps[i:i + step], step)
            outs.append(self.session.run(None, feeds)[0][:n])
        return np.concatenate(outs)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last item so a short final chunk fits a static batch."""
    return x if len(x) == n else np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def open_runner(path: Path, threads: int | None = None):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx (or .trt engine) written by elir-edge")
    if path.suffix == ".onnx":
        return OrtRunner(path, threads)
    if path.suffix in (".trt", ".engine", ".plan"):
        from .tensorrt_engine import EngineUnavailable, load_engine

        try:
            load_engine(path)
        except EngineUnavailable as e:
            raise UserError(f"{path}: {e}") from None
        raise UserError(f"{path}: running TensorRT engines is not in this version yet; run model_int8.onnx "
                        "with ONNX Runtime's TensorRT provider meanwhile")
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or a .trt engine")
