"""Which installed CPU runtime computes which int8 file right on this machine, measured at quantize time on
one held-out input (the probe later stages check again before they run a file: runtime.probe)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np

from elir_edge.common.metrics import psnr
from elir_edge.runtime.open import RunnerOptions, open_runner
from elir_edge.runtime.ort import reference_session
from elir_edge.runtime.probe import ProbeResult, measure, probe_bytes

CPU_RUNTIMES = {"ort": "onnxruntime", "openvino": "openvino"}  # --runtime name -> the module it needs


def installed_cpu_runtimes() -> list[str]:
    return [rt for rt, module in CPU_RUNTIMES.items() if importlib.util.find_spec(module) is not None]


def record_runtimes(blobs: dict[str, bytes], feed: dict[str, np.ndarray], float_out: np.ndarray) -> tuple[bytes, dict]:
    """The probe file's bytes, and for the report: each file's own arithmetic on the probe (reference PSNR vs
    float) and, per installed CPU runtime, what that runtime gets and whether it computes the file right."""
    probe = {"lq": feed["lq"], "eps": feed.get("eps"), "hq": float_out}
    reference = {name: psnr(reference_session(b).run(["hq"], feed)[0], float_out) for name, b in blobs.items()}
    verdicts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="elir-edge-probe-") as tmp:
        for name, b in blobs.items():
            (Path(tmp) / name).write_bytes(b)
        for rt in installed_cpu_runtimes():
            for name in blobs:
                with open_runner(Path(tmp) / name, RunnerOptions(runtime=rt)) as runner:
                    r = ProbeResult(name, runner.kind, measure(runner, probe), reference[name])
                verdicts.setdefault(r.runtime, {})[name] = r.to_dict()
    return probe_bytes(probe["lq"], probe["eps"], float_out), {"reference_psnr_db": reference, "runtimes": verdicts}


def runtimes_line(runtimes: dict) -> str:
    """One table cell: per runtime (the report's `runtimes_here`), the files it computes wrongly here, if any."""
    parts = []
    for runtime, files in runtimes.items():
        bad = [f"{n} ({v['psnr_db']:.1f} dB vs {v['reference_db']:.1f})" for n, v in files.items()
               if not v["computes_right"]]
        parts.append(f"{runtime}: " + (f"WRONG on {', '.join(bad)}" if bad else "all files right"))
    return "; ".join(parts)
