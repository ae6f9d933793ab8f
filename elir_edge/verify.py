"""Compare an ONNX file on ONNX Runtime with the PyTorch reference on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .quality import psnr


@dataclass(frozen=True)
class Agreement:
    max_abs_err: float
    psnr_db: float  # of the ONNX output against the reference, data range 1

    def to_dict(self) -> dict:
        return {"max_abs_err": self.max_abs_err, "psnr_db": self.psnr_db}


def ort_session(path: Path, threads: int | None = None, providers: list[str] | None = None):
    return ort_session_from_bytes(str(path), threads, providers)


def ort_session_from_bytes(model: bytes | str, threads: int | None = None, providers: list[str] | None = None):
    """A session (CPU unless told) from a file path or serialized model bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"])


def compare(onnx_path: Path, feeds: dict[str, np.ndarray], reference: np.ndarray) -> Agreement:
    out = ort_session(onnx_path).run(None, feeds)[0]
    return Agreement(max_abs_err=float(np.max(np.abs(out - reference))), psnr_db=psnr(out, reference))
