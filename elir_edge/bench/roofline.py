"""On-paper FPS for GPUs we cannot measure: a roofline from counted MACs and a device's published peaks.

time per image >= max(2 * MACs / peak ops, bytes / memory bandwidth), bytes = weights at the precision
plus the input and output images. Activation traffic and kernel efficiency are ignored, so the figure
is an upper bound on FPS, always labelled as an estimate, never mixed with measured rows.
"""

from __future__ import annotations

import json
from importlib import resources

from elir_edge.errors import UserError
from elir_edge.model.export_folder import ExportFolder

BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
PEAK_KEY = {"fp32": ("fp32_tflops", 1e12), "fp16": ("fp16_tflops", 1e12), "int8": ("int8_tops", 1e12)}


def devices() -> dict:
    return json.loads(resources.files("elir_edge").joinpath("data/devices.json").read_text())


def estimate(gmacs: float, params: int, image_hw: tuple[int, int], device: dict) -> dict:
    """Upper-bound FPS per precision for one image of `image_hw` (batch 1)."""
    h, w = image_hw
    io_bytes = 2 * 3 * h * w * 4  # float input and output
    out = {}
    for prec, nbytes in BYTES.items():
        key, unit = PEAK_KEY[prec]
        t_compute = 2 * gmacs * 1e9 / (device[key] * unit)
        t_memory = (params * nbytes + io_bytes) / (device["memory_gb_s"] * 1e9)
        t = max(t_compute, t_memory)
        out[prec] = {"fps_upper_bound": 1 / t, "bound": "compute" if t_compute >= t_memory else "memory",
                     "compute_ms": t_compute * 1000, "memory_ms": t_memory * 1000}
    return out


def roofline(folder: ExportFolder, names: list[str]) -> dict:
    table = devices()
    unknown = [n for n in names if n not in table and n != "all"]
    if unknown:
        raise UserError(f"unknown device {unknown[0]!r} for --roofline: choose from {', '.join(table)} or all")
    chosen = list(table) if "all" in names else names
    s = folder.settings
    return {n: {"device": table[n]["name"], "source": table[n]["source"],
                **estimate(folder.gmacs_per_image, folder.deployed_params, (s.height, s.width), table[n])}
            for n in chosen}
