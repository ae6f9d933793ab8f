"""Which CPU runtime (every installed one, or those asked) computes which CPU int8 file right on this machine,
measured at quantize time on one held-out input (the probe later stages check again before they run any int8
file: runtime.probe). The TensorRT forms are not checked here: they are built for a GPU, and a CPU runtime
given one is probed when it opens it."""

from __future__ import annotations

import importlib.util
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from elir_edge.common.cores import usable_cores
from elir_edge.common.metrics import psnr
from elir_edge.errors import UserError
from elir_edge.model.export_folder import CPU_FILES, INT8_CPU, INT8_CPU_W8
from elir_edge.runtime.open import RUNTIMES, RunnerOptions, open_runner
from elir_edge.runtime.openvino import INSTALL
from elir_edge.runtime.ort import reference_session
from elir_edge.runtime.probe import ProbeResult, measure, probe_bytes


def installed_cpu_runtimes() -> list[str]:
    return [rt for rt, module in RUNTIMES.items() if importlib.util.find_spec(module) is not None]


def runtimes_to_check(asked: list[str] | None) -> list[str]:
    """The CPU runtimes whose verdicts quantize records: those asked (a user who ships on ONNX Runtime alone need
    not wait for OpenVINO's compile of each file), else every installed one. Refused before any work where an
    asked one is not installed."""
    installed = installed_cpu_runtimes()
    if not asked:
        return installed
    unknown = next((rt for rt in asked if rt not in RUNTIMES), None)
    if unknown:
        raise UserError(f"--runtime {unknown}: not a CPU runtime; give {' or '.join(RUNTIMES)}")
    missing = next((rt for rt in asked if rt not in installed), None)
    if missing:
        raise UserError(f"--runtime {missing}: {RUNTIMES[missing]} is not installed here: "
                        f"{INSTALL if missing == 'openvino' else 'pip install onnxruntime'}, or leave it out")
    return list(dict.fromkeys(asked))


def record_runtimes(blobs: dict[str, bytes], feed: dict[str, np.ndarray], float_out: np.ndarray,
                    runtimes: list[str]) -> tuple[bytes, dict]:
    """The probe file's bytes, and for the report: each file's own arithmetic on the probe (reference PSNR vs
    float) and, per CPU runtime of `runtimes`, what that runtime gets on each CPU file and whether it computes the
    file right."""
    probe = {"lq": feed["lq"], "eps": feed.get("eps"), "hq": float_out}
    reference = {name: psnr(reference_session(b).run(["hq"], feed)[0], float_out) for name, b in blobs.items()}
    verdicts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="elir-edge-probe-") as tmp:
        for name in CPU_FILES:
            (Path(tmp) / name).write_bytes(blobs[name])

        def check(rt_name: tuple[str, str]) -> ProbeResult:
            rt, name = rt_name
            with open_runner(Path(tmp) / name, RunnerOptions(runtime=rt)) as runner:
                return ProbeResult(name, runner.kind, measure(runner, probe), reference[name])

        # OpenVINO compiles each file on one core for seconds: the checks run side by side on the cores, once
        # its bindings' numpy statics exist (two threads first touching them deadlock, seen here); queued file by
        # file, so on 2 cores a compile mostly runs beside ONNX Runtime's checks, not beside another compile (the
        # demo's peak ~75 MiB lower)
        if "openvino" in runtimes:
            _touch_openvino_numpy()
        with ThreadPoolExecutor(max_workers=usable_cores()) as pool:
            for r in pool.map(check, [(rt, name) for name in CPU_FILES for rt in runtimes]):
                verdicts.setdefault(r.runtime, {})[r.file] = r.to_dict()
    return probe_bytes(probe["lq"], probe["eps"], float_out), {"reference_psnr_db": reference, "runtimes": verdicts}


def _touch_openvino_numpy() -> None:
    """Initialise OpenVINO's pybind11 numpy statics in this thread: made first by two threads at once, one holds
    C++'s static-init guard waiting for the GIL the other holds waiting for the guard (a hang at 0 % CPU)."""
    import openvino as ov

    ov.Tensor(np.zeros((1,), np.float32))


def runtimes_line(runtimes: dict) -> str:
    """One table cell: per runtime (the report's `runtimes_here`), the files it computes wrongly here, if any."""
    parts = []
    for runtime, files in runtimes.items():
        bad = [f"{n} ({v['psnr_db']:.1f} dB vs {v['reference_db']:.1f})" for n, v in files.items()
               if not v["computes_right"]]
        parts.append(f"{runtime}: " + (f"WRONG on {', '.join(bad)}" if bad else "all files right"))
    return "; ".join(parts)


def cpu_file_to_ship(target: str, features: dict, runtimes: dict) -> dict:
    """Which CPU file to deploy to the `target` CPU (vnni, avx2, or auto: this one), and why in one line. On
    this machine the recorded verdicts decide: 8-bit weights only where every runtime checked computes them
    right here."""
    if target == "auto":
        wrong = [rt for rt, files in runtimes.items() if not files.get(INT8_CPU_W8, {}).get("computes_right", False)]
        dot = features.get("int8_dot_product")
        if dot and not wrong:
            return {"target": f"this CPU ({dot})", "file": INT8_CPU_W8,
                    "why": f"this CPU has {dot} and {', '.join(runtimes) or 'no runtime'} computes the 8-bit "
                           "weights right here"}
        why = f"{', '.join(wrong)} computes the 8-bit weights wrongly here" if wrong else \
            "this CPU has no int8 dot-product instruction (VNNI/AMX)"
        return {"target": "this CPU", "file": INT8_CPU, "why": f"{why}: 7-bit weights cannot saturate"}
    if target == "vnni":
        return {"target": "a CPU with VNNI/AMX (--cpu vnni)", "file": INT8_CPU_W8,
                "why": "its int8 dot product adds u8 x s8 products in 32 bits: 8-bit weights do not saturate"}
    return {"target": "a CPU without VNNI (--cpu avx2)", "file": INT8_CPU,
            "why": "its int8 kernels add u8 x s8 pairs in 16 bits: 7-bit weights keep them from saturating"}
