"""The contract every backend keeps (Polygraphy's runner idea, kept small): a name, what it runs on,
`runner(lq, eps) -> hq` on NCHW float32 numpy arrays, and `close()` to give its resources back; usable as a
context manager. Backends subclass `Runner` so the shared parts live here once."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    name: str  # the artifact's file name
    kind: str  # the backend as a report shows it, e.g. "ONNX Runtime CPU"
    on_gpu: bool

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray: ...

    def close(self) -> None:
        """Give back what the runner holds (sessions, GPU buffers); CPU backends hold nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
