"""Compare an ONNX file on ONNX Runtime with the PyTorch reference on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elir_edge.common.metrics import psnr
from elir_edge.runtime.ort import ort_session


@dataclass(frozen=True)
class Agreement:
    max_abs_err: float
    psnr_db: float  # of the ONNX output against the reference, data range 1

    def to_dict(self) -> dict:
        return {"max_abs_err": self.max_abs_err, "psnr_db": self.psnr_db}


def compare(onnx_path: Path, feeds: dict[str, np.ndarray], reference: np.ndarray) -> Agreement:
    out = ort_session(onnx_path).run(None, feeds)[0]
    return Agreement(max_abs_err=float(np.max(np.abs(out - reference))), psnr_db=psnr(out, reference))
