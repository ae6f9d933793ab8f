"""The contract every backend keeps (Polygraphy's runner idea, kept small): what it runs (`interface`,
typed), on what (`kind`, `on_gpu`), `runner(lq, eps) -> hq` on NCHW float32 numpy arrays, `timed` for the
device-side breakdown where a backend has one, and `close()`; usable as a context manager. Backends
subclass `Runner`, so the defaults live here once and `isinstance(x, Runner)` holds for each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from elir_edge.model.settings import parse_image_size
from elir_edge.runtime.layer_precision import LayerPrecisions


@dataclass(frozen=True)
class Interface:
    """What a runner's graph takes, read once when it opens: elir-edge's metadata (task, arch, K, which int8
    form) and its `lq` input: height, width and batch (None where dynamic), latent channels, eps or not."""
    meta: dict[str, str]
    height: int | None
    width: int | None
    batch: int | None
    latent_channels: int
    needs_eps: bool

    @property
    def task(self) -> str | None:
        return self.meta.get("task")

    @property
    def size(self) -> tuple[int, int] | None:
        """The graph's H, W: its static input, else the size it was exported at (elir-edge's metadata)."""
        if self.height and self.width:
            return self.height, self.width
        return parse_image_size(self.meta["image_size"]) if "image_size" in self.meta else None

    @property
    def int8_cpu_form(self) -> bool:
        """A CPU form of an int8 graph (for ONNX Runtime, or the OpenVINO form), by the metadata quantize writes:
        its convolutions are meant to run in int8 on a CPU."""
        return str(self.meta.get("int8_flavour", "")).startswith("cpu")

    @property
    def int8(self) -> bool:
        """An int8 graph written by quantize (either form)."""
        return "int8_flavour" in self.meta


@runtime_checkable
class Runner(Protocol):
    path: Path  # the artifact
    name: str  # its file name
    kind: str  # the backend as a report shows it, e.g. "ONNX Runtime CPU"
    on_gpu: bool
    interface: Interface
    load_ms: float | None = None  # engines: deserialisation (TensorRT-RTX compiles for the GPU there)
    context_ms: float | None = None  # engines: making the process's CUDA context first, timed apart from load_ms
    first_run_ms: float | None = None  # engines: the first inference of a shape, kept out of latency
    flag: str | None = None  # why its speed may not be a fair figure (a SUBOPTIMAL TensorRT-RTX engine)

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray: ...

    def timed(self, lq: np.ndarray, eps: np.ndarray | None) -> dict | np.ndarray:
        """One run with the device-side breakdown in ms (CUDA events) where the backend measures one; the
        plain run otherwise."""
        return self(lq, eps)

    def layer_precisions(self) -> LayerPrecisions | None:
        """Engines: the precision each layer runs in, by TensorRT's engine inspector; None elsewhere."""
        return None

    def close(self) -> None:
        """Give back what the runner holds (GPU buffers, streams); CPU backends hold nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
