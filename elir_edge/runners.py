"""Runners behind one interface: `runner(lq, eps) -> hq` on NCHW float32 numpy arrays.

The artifact's suffix picks the runner: .onnx -> ONNX Runtime (CPU, or its CUDA/TensorRT execution
providers); .trt/.engine/.plan -> TensorRT (tensorrt_engine.py); a torch model -> PyTorch (the looped
reference). Static-batch graphs are fed in chunks of their batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UserError

ENGINE_SUFFIXES = (".trt", ".engine", ".plan")
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}


class TorchRunner:
    kind = "PyTorch eager (looped)"

    def __init__(self, model, name: str = "pytorch"):
        self.model, self.name, self.needs_eps = model.eval(), name, True

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(lq), torch.from_numpy(eps)).numpy()


class OrtRunner:
    def __init__(self, path: Path, threads: int | None = None, provider: str = "cpu"):
        from .verify import ort_session

        self.path, self.name = Path(path), Path(path).name
        self.graph_path = self.path
        providers = _providers(provider)
        self.kind = "ONNX Runtime " + {"cpu": "CPU", "cuda": "CUDA EP", "tensorrt": "TensorRT EP"}[provider]
        try:
            self.session = ort_session(self.path, threads, providers)
        except Exception as e:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
            raise UserError(f"{path} cannot be loaded by ONNX Runtime ({str(e).splitlines()[0][:150]}): "
                            "re-export it with `elir-edge export`") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.needs_eps = "eps" in inputs
        b = inputs["lq"][0]
        self.batch = b if isinstance(b, int) else None

    def run_batch(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        feeds = {"lq": lq, **({"eps": eps} if self.needs_eps else {})}
        return self.session.run(None, feeds)[0]

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        return in_batches(self.run_batch, self.batch or len(lq), lq, eps)


def _providers(provider: str) -> list[str]:
    """The execution providers to ask for, best first, always ending on the CPU; a missing one is an error,
    not a silent fallback, so a timing never claims a device it did not use."""
    import onnxruntime as ort

    if provider not in ORT_PROVIDERS:
        raise UserError(f"unknown provider {provider!r}: use one of {', '.join(ORT_PROVIDERS)}")
    wanted = ORT_PROVIDERS[provider]
    have = ort.get_available_providers()
    if wanted not in have:
        raise UserError(f"ONNX Runtime here has no {wanted} (it has {', '.join(have)}): "
                        "install onnxruntime-gpu on a machine with an NVIDIA GPU, or use --provider cpu")
    chain = list(ORT_PROVIDERS.values())[: list(ORT_PROVIDERS).index(provider) + 1][::-1]
    return [p for p in chain if p in have]


def in_batches(run_batch: Callable[[np.ndarray, np.ndarray | None], np.ndarray], batch: int, lq: np.ndarray,
               eps: np.ndarray | None) -> np.ndarray:
    """Run `run_batch` on chunks of exactly `batch` items, padding the last one, and trim the padding."""
    outs = []
    for i in range(0, len(lq), batch):
        n = len(lq[i:i + batch])
        outs.append(run_batch(_pad(lq[i:i + batch], batch),
                              None if eps is None else _pad(eps[i:i + batch], batch))[:n])
    return np.concatenate(outs)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    """Repeat the last item so a short final chunk fits a static batch."""
    return x if len(x) == n else np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def open_runner(path: Path, threads: int | None = None, provider: str = "cpu", cuda_graph: bool = False):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx (or .trt engine) written by elir-edge")
    if path.suffix == ".onnx":
        return OrtRunner(path, threads, provider)
    if path.suffix in ENGINE_SUFFIXES:
        from .tensorrt_engine import EngineUnavailable, TrtRunner

        try:
            return TrtRunner(path, cuda_graph)
        except EngineUnavailable as e:
            raise UserError(f"{path}: {e}") from None
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or a .trt engine")
