"""An export folder given where an artifact is expected: the int8 CPU file this machine computes right, opened.

The CPU forms are tried most exact first (8-bit weights, then 7-bit: `FOLDER_CHOICE`), each probed on this
runtime with the input quantize recorded (runtime.probe); the first that computes right here runs. Why: 8-bit
weights are more exact, and right on CPUs whose int8 dot product adds in 32 bits (VNNI/AMX), but saturate in
the 16-bit sums of CPUs without it, where only the 7-bit file is right. The choice is said in one line; on
OpenVINO it names the OpenVINO form, faster there and less exact, for a user to give (never chosen: it is
slower than the float graph on ONNX Runtime, and on OpenVINO a trade of exactness a user makes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from elir_edge.errors import UserError
from elir_edge.model.export_folder import FLOAT, FOLDER_CHOICE, INT8_CPU_S8, ExportFolder, is_export_folder
from elir_edge.runtime.openvino import OpenVinoRunner
from elir_edge.runtime.probe import ProbeResult, probe_runner
from elir_edge.runtime.runner import Runner


@dataclass(frozen=True)
class Choice:
    """The runner opened for an artifact, and for an export folder the line that says which file and why."""
    runner: Runner
    why: str | None = None

    def __enter__(self) -> "Choice":
        return self

    def __exit__(self, *exc) -> None:
        self.runner.close()


def open_choice(path: Path, open_file: Callable[[Path], Runner], cpu_runtime: bool) -> Choice:
    """`open_file(path)` for a file; for an export folder on a CPU runtime, its best CPU file computed right here
    (the float model.onnx where none is), with the reason."""
    path = Path(path)
    if not path.is_dir():
        return Choice(open_file(path))
    if not is_export_folder(path):
        raise UserError(f"{path} is a folder but not an export folder: give an artifact (model.onnx, an int8 "
                        "file, an engine) or a folder written by `elir-edge export`")
    if not cpu_runtime:
        raise UserError(f"{path} is an export folder: on a GPU give the file itself (model.onnx, an engine); "
                        "a folder picks among the int8 CPU files")
    folder = ExportFolder(path)
    wrong: list[ProbeResult] = []
    for name in (n for n in FOLDER_CHOICE if (folder.path / n).is_file()):
        runner, result = _probed(open_file, folder.path / name)
        if result is None or result.ok:
            return Choice(runner, _why(folder, runner, result, wrong) + _faster_on_openvino(folder, runner))
        runner.close()
        wrong.append(result)
    runner = open_file(folder.path / FLOAT)
    fix = "run `elir-edge quantize` on it" if not wrong else \
        "; ".join(r.describe() for r in wrong) + ": run `elir-edge quantize` again on this machine"
    return Choice(runner, f"{folder.path}: runs {FLOAT} (float): no int8 CPU file computes right here ({fix})")


def _probed(open_file: Callable[[Path], Runner], path: Path) -> tuple[Runner, ProbeResult | None]:
    """The file opened, and how this runtime computes it on the recorded probe (None: nothing recorded)."""
    runner = open_file(path)
    try:
        return runner, probe_runner(runner)
    except BaseException:  # a damaged probe file, an interrupt: the runner is given back either way
        runner.close()
        raise


def _why(folder: ExportFolder, runner: Runner, result: ProbeResult | None, wrong: list[ProbeResult]) -> str:
    recorded = folder.recorded_psnr(runner.name)
    quality = f", {recorded:.1f} dB vs float at quantize" if recorded is not None else ""
    flavour = runner.interface.meta.get("int8_flavour", "int8")
    head = f"{folder.path}: runs {runner.name} ({flavour}{quality}) on {runner.kind}"
    if wrong:
        return f"{head}; not {wrong[0].file}: {wrong[0].describe()}"
    if result is None:
        return f"{head} (no probe recorded: quantize again to have this machine checked)"
    missing = [n for n in FOLDER_CHOICE[:FOLDER_CHOICE.index(runner.name)] if not (folder.path / n).is_file()]
    more = f"; the folder has no {missing[0]} (quantize again for it)" if missing else ""
    return f"{head}: computes it right here ({result.measured_db:.1f} dB on the recorded input){more}"


def _faster_on_openvino(folder: ExportFolder, runner: Runner) -> str:
    """On OpenVINO, where the folder has the OpenVINO form and OpenVINO computed it right when it was quantized
    (without VNNI its 8-bit weights saturate; a user who gives it is probed here as for any int8 file): that it
    exists, and what it costs."""
    if not isinstance(runner, OpenVinoRunner) or not (folder.path / INT8_CPU_S8).is_file() or \
            not folder.computed_right(runner.kind, INT8_CPU_S8):
        return ""
    recorded = folder.recorded_psnr(INT8_CPU_S8)
    cost = f" at {recorded:.1f} dB vs float at quantize" if recorded is not None else ""
    return f"; for speed on OpenVINO give {INT8_CPU_S8} (int8 without zero points{cost})"
