"""Graphs run against the float reference on the same inputs, in one place: export's verification (ONNX vs
PyTorch), the fp16 check (fp16 vs fp32), quantize's evaluator (each int8 variant vs float, latents per
step) and bench's per-image figures all measure agreement here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elir_edge.common.metrics import psnr, ssim


@dataclass(frozen=True)
class Agreement:
    """How far outputs are from the reference: the largest absolute difference, the mean PSNR (data range 1)
    and, where asked, the mean SSIM, over the images."""
    max_abs_err: float
    psnr_db: float
    ssim: float | None = None

    def to_dict(self) -> dict:
        return {"max_abs_err": self.max_abs_err, "psnr_db": self.psnr_db,
                **({"ssim": self.ssim} if self.ssim is not None else {})}


def run_graph(model, feeds: list[dict[str, np.ndarray]], extra: list[str] | None = None,
              threads: int | None = None) -> list[list[np.ndarray]]:
    """[hq, *extra] of a graph (a path or an in-memory ModelProto) on ONNX Runtime's CPU for each feed."""
    from elir_edge.runtime.ort import ort_session, session_with_outputs

    sess = ort_session(Path(model), threads) if isinstance(model, (str, Path)) else \
        session_with_outputs(model, extra or [], threads)
    return [sess.run(["hq", *(extra or [])], f) for f in feeds]


def agreement(outputs: list[np.ndarray], references: list[np.ndarray], with_ssim: bool = False) -> Agreement:
    return Agreement(max_abs_err=max(float(np.max(np.abs(o - r))) for o, r in zip(outputs, references)),
                     psnr_db=float(np.mean([psnr(o, r) for o, r in zip(outputs, references)])),
                     ssim=float(np.mean([ssim(a, b) for o, r in zip(outputs, references) for a, b in zip(o, r)]))
                     if with_ssim else None)


def per_image(outputs: np.ndarray, targets: np.ndarray) -> dict[str, list[float]]:
    """PSNR and SSIM of each image of a batch against its target (bench's rows, with their intervals)."""
    return {"psnr": [psnr(o, t) for o, t in zip(outputs, targets)],
            "ssim": [ssim(o, t) for o, t in zip(outputs, targets)]}
