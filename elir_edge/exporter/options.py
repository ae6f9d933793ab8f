"""What `elir-edge export` can be asked, without heavy imports: the CLI takes its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOLERANCE = 1e-3  # max |ONNX - PyTorch| the verification allows


@dataclass
class ExportOptions:
    task: str | None = None
    steps: int | None = None
    sigma: float | None = None
    image_size: tuple[int, int] | None = None
    batch: int = 1
    dynamic: bool = False
    baked_noise: bool = False
    seed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    output: Path | None = None
    fp16: bool = True  # also write model_fp16.onnx for NVIDIA's 16-bit paths
