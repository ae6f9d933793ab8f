"""What `elir-edge quantize` can be asked, as dataclasses without heavy imports: the CLI builds its parser
from these fields (defaults included) before torch or MCT are loaded."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

ERROR_METHODS = ("mse", "noclipping", "mae", "kl", "lp", "hmse")
CPU_TARGETS = ("auto", "vnni", "avx2")  # the CPU the int8 CPU file is meant for (auto: this one)
EDGE_LAYERS = ["enc.layers.0", "dec.layers.18", "steps.*.final_proj"]  # first conv, last conv, Euler updates


@dataclass
class PTQOptions:
    error_method: str = "mse"  # activations
    weights_error_method: str = "noclipping"  # per-channel max, as TensorRT-style tools quantize weights
    bias_correction: bool = True
    z_threshold: float = math.inf  # outlier removal before threshold search; inf = off
    gptq_epochs: int = 0  # > 0: gradient-based PTQ (mct.gptq) on the calibration batches


@dataclass
class QuantizeOptions:
    model: Path | None = None  # export folder; default: newest under export/
    calib: Path | None = None  # default: ./calibration where it exists, else the photographs bundled with elir-edge
    degrade: bool = True  # the folder holds clean photographs: synthesize the task's inputs
    num_images: int | None = None
    holdout: int | None = None  # calibration images kept out of PTQ for the drift figures
    batch: int = 2
    seed: int = 0
    ptq: PTQOptions = field(default_factory=PTQOptions)
    keep_float: list[str] = field(default_factory=list)  # module-path patterns, e.g. steps.*.final_proj
    auto_precision: bool = False
    target_psnr: float = 35.0
    sensitivity_images: int | None = None  # held-out images per block; default: SENSITIVITY_PIXELS' worth
    calib_size: int | None = None  # calibration crops (px); default: the graph's size, at most CALIB_CROP
    memory_limit_gb: float | None = None  # refuse above this estimate; default: this machine's available memory
    cpu: str = "auto"  # which CPU file to ship: vnni (8-bit weights), avx2 (7-bit weights), auto (this CPU's)
    # CPU runtimes the int8 CPU files are checked on (ort, openvino); None: every installed one
    runtimes: list[str] | None = None
