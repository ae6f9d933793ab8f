"""Does this runtime compute this int8 file right, on this machine? The file is run on the input quantize
recorded beside it (`int8_probe.safetensors`: an input and the float model's output on it), and its PSNR
against that output is held to the PSNR of the file's own arithmetic (Q/DQ evaluated in float by ONNX
Runtime with its graph optimizations off, so no int8 kernel is involved).

Why: on x86 CPUs without VNNI, int8 kernels multiply u8 x s8 into 16-bit sums that saturate on files with
full 8-bit weights (OpenVINO on every such file, ONNX Runtime on some); the images come out wrong and no
error is raised. restore refuses such a file, bench flags it, quantize records the verdict per runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from elir_edge.errors import UserError
from elir_edge.model.export_folder import INT8_CPU, INT8_FILES, PROBE, ExportFolder
from elir_edge.runtime.runner import Runner

MARGIN_DB = 3.0  # a runtime this far below the file's own arithmetic on the same input computes it wrongly
WHY = ("16-bit saturation of u8 x s8 products in int8 kernels on CPUs without VNNI is the known cause; "
       f"{INT8_CPU} keeps its weights to 7 bits to avoid it")


@dataclass(frozen=True)
class ProbeResult:
    file: str
    runtime: str
    measured_db: float  # this runtime, PSNR vs the float model on the recorded input
    reference_db: float  # the file's own arithmetic on that input, recorded by quantize

    @property
    def ok(self) -> bool:
        return self.measured_db >= self.reference_db - MARGIN_DB

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "psnr_db": self.measured_db, "reference_db": self.reference_db,
                "computes_right": self.ok}

    def describe(self) -> str:
        return (f"{self.runtime} computes {self.file} wrongly on this machine: {self.measured_db:.1f} dB against "
                f"the float model on the recorded input, where the file's own arithmetic gives "
                f"{self.reference_db:.1f} dB")


def probe_bytes(lq: np.ndarray, eps: np.ndarray | None, hq: np.ndarray) -> bytes:
    """The probe file's content: the input (lq, eps unless baked) and the float model's output on it."""
    from safetensors.numpy import save

    tensors = {"lq": lq, "hq": hq, **({"eps": eps} if eps is not None else {})}
    return save({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()})


def load_probe(path: Path) -> dict[str, np.ndarray]:
    """The recorded input and output (safetensors: plain tensors, nothing to unpickle)."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for damaged files
        raise UserError(f"{path} is not a readable probe ({type(e).__name__}): run `elir-edge quantize` again") \
            from None


def measure(runner, probe: dict[str, np.ndarray]) -> float:
    from elir_edge.common.metrics import psnr

    return psnr(runner(probe["lq"], probe.get("eps")), probe["hq"])


def probe_runner(runner: Runner) -> ProbeResult | None:
    """Run an int8 file of an export folder on the recorded input; None where there is nothing to check (a
    float file, a GPU runner, a file on its own, a folder quantized before probes were recorded)."""
    artifact = runner.path
    folder = ExportFolder.of(artifact)
    if runner.on_gpu or folder is None or artifact.name not in INT8_FILES:
        return None
    recorded = (folder.quant_report or {}).get("probe") or {}
    reference = recorded.get("reference_psnr_db", {}).get(artifact.name)
    if reference is None:
        return None
    probe = load_probe(folder.verified(PROBE))
    return ProbeResult(artifact.name, runner.kind, measure(runner, probe), float(reference))


def wrong_here(runners: list[Runner]) -> str | None:
    """Why these runners may not be used here: the int8 files this machine's runtimes compute wrongly, or None."""
    wrong = [r.describe() for r in map(probe_runner, runners) if r is not None and not r.ok]
    return f"{'; '.join(wrong)} ({WHY})" if wrong else None


def refuse_if_wrong(runner: Runner, reopen: Callable[[Path], Runner]) -> None:
    """Raise a one-line UserError when `runner` computes its int8 file wrongly here, naming the files of the
    folder that this runtime does compute right (each probed now, opened with `reopen(path)`)."""
    result = probe_runner(runner)
    if result is None or result.ok:
        return
    good = []
    for name in (n for n in INT8_FILES if n != runner.name and (runner.path.parent / n).is_file()):
        with reopen(runner.path.parent / name) as other:
            r = probe_runner(other)
        if r is not None and r.ok:
            good.append(name)
    fix = (f"use {' or '.join(good)}, which {result.runtime} computes right here" if good else
           "use the float model.onnx, or run `elir-edge quantize` again on this machine")
    raise UserError(f"{result.describe()} ({WHY}): {fix}; nothing was written")
