"""The export folder, in one place: its file names, its manifest and quant report as typed fields, and the
check that a file is the one its manifest (or quant report) describes before any stage uses it.

Every stage takes an `ExportFolder`; no other module spells a file name of the folder or a manifest key.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.model.settings import RunSettings

MANIFEST = "manifest.json"
FLOAT = "model.onnx"
FP16 = "model_fp16.onnx"
WEIGHTS = "weights.safetensors"
INT8 = "model_int8.onnx"  # TensorRT form: int8, zero point 0, 8-bit weights
INT8_FP16 = "model_int8_fp16.onnx"  # the same with fp16 float parts
INT8_CPU = "model_int8_cpu.onnx"  # ONNX Runtime CPU form: uint8 zero point 128, 7-bit weights (any x86 CPU)
INT8_CPU_W8 = "model_int8_cpu_w8.onnx"  # the same with full 8-bit weights (CPUs with VNNI/AMX or Arm dotprod)
INT8_CPU_S8 = "model_int8_cpu_s8.onnx"  # OpenVINO form: the CPU form's Q/DQ with every zero point 0, 8-bit weights
QUANT_REPORT = "quant_report.json"
PROBE = "int8_probe.safetensors"  # a recorded input and the float model's output on it (quantize writes it)
RTX_ENGINE = "model_fp16.rtx.engine"  # the TensorRT-RTX engine of FP16 for the RTX 2080 Ti (engines.turing_engine)

EXPORT_FILES = (FLOAT, FP16, WEIGHTS, MANIFEST)  # what `elir-edge export` writes
# what `elir-edge quantize` writes, with QUANT_REPORT and PROBE
INT8_FILES = (INT8, INT8_CPU, INT8_CPU_W8, INT8_CPU_S8, INT8_FP16)
RECORDED_KEYS = {INT8: "int8_vs_float", INT8_CPU: "int8_cpu_vs_float", INT8_CPU_W8: "int8_cpu_w8_vs_float",
                 INT8_CPU_S8: "int8_cpu_s8_vs_float", INT8_FP16: "int8_fp16_vs_float"}
# the CPU forms, each checked on every CPU runtime at quantize: 8-bit and 7-bit weights on the seen grids, and the
# OpenVINO form (MCT's own grids: faster on OpenVINO, less exact)
CPU_FILES = (INT8_CPU_W8, INT8_CPU, INT8_CPU_S8)
# what a folder runs, most exact first: 8-bit weights where the runtime computes them right, else 7-bit
FOLDER_CHOICE = (INT8_CPU_W8, INT8_CPU)


def is_export_folder(folder: Path) -> bool:
    try:
        return "elir_edge_version" in json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError, TypeError):
        return False


class ExportFolder:
    """An existing folder written by `elir-edge export` (and maybe `quantize`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not (self.path / MANIFEST).is_file():
            raise UserError(f"{self.path} is not an export folder (no {MANIFEST}): run `elir-edge export` first, "
                            "or point at a folder it wrote")

    @classmethod
    def newest(cls, root: Path = Path("export")) -> "ExportFolder":
        found = sorted(Path(root).glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise UserError(f"no export under {root}/: run `elir-edge export CKPT` first, or pass --model DIR")
        return cls(found[-1].parent)

    @classmethod
    def of(cls, artifact: Path) -> "ExportFolder | None":
        """The export folder an artifact lies in, or None for a file on its own."""
        folder = Path(artifact).parent
        return cls(folder) if (folder / MANIFEST).is_file() else None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @cached_property
    def manifest(self) -> dict:
        try:
            m = json.loads((self.path / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{self.path / MANIFEST} is not readable JSON ({type(e).__name__}): export the model "
                            "again") from None
        if not isinstance(m, dict) or "elir_edge_version" not in m:
            raise UserError(f"{self.path / MANIFEST} was not written by `elir-edge export`: export the model again")
        return m

    def _read(self, read):
        try:
            return read(self.manifest)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{self.path / MANIFEST} lacks {e} (damaged, or from another tool): export the model "
                            "again") from None

    @cached_property
    def settings(self) -> RunSettings:
        """K, sigma_s, the graph's H and W and batch, as numbers (never "HxW" strings)."""
        return self._read(lambda m: RunSettings(
            task=m["settings"]["task"], k_steps=int(m["settings"]["k_steps"]), sigma_s=float(m["settings"]["sigma_s"]),
            height=int(m["settings"]["height"]), width=int(m["settings"]["width"]), batch=int(m["settings"]["batch"])))

    @property
    def arch(self) -> dict:
        """The collapsed architecture (ArchConfig.from_dict reads it)."""
        return self._read(lambda m: dict(m["arch"]))

    @property
    def latent_channels(self) -> int:
        return self._read(lambda m: int(m["arch"]["latent_channels"]))

    @property
    def baked_noise(self) -> bool:
        """The graph carries eps as a constant (single input `lq`)."""
        return self._read(lambda m: m["onnx"]["noise"] == "baked")

    @property
    def noise_seed(self) -> int:
        return self._read(lambda m: int(m["onnx"]["seed"]))

    @property
    def gmacs_per_image(self) -> float | None:
        return self.manifest.get("gmacs_per_image")

    @property
    def deployed_params(self) -> int | None:
        return self.manifest.get("deployed_params")

    @cached_property
    def quant_report(self) -> dict | None:
        """quantize's report, or None before `elir-edge quantize` ran on this folder."""
        path = self.path / QUANT_REPORT
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise UserError(f"{path} is not readable JSON: run `elir-edge quantize` again") from None

    def recorded_psnr(self, name: str) -> float | None:
        """PSNR vs float that quantize measured for one of its int8 graphs, if any."""
        key = RECORDED_KEYS.get(name)
        try:
            return float(self.quant_report[key]["psnr_db"]) if key and self.quant_report else None
        except (KeyError, TypeError, ValueError):
            return None

    def computed_right(self, runtime: str, name: str) -> bool:
        """Whether `runtime` (a runner's kind) computed `name` right on the machine quantize ran on, as recorded."""
        try:
            return self.quant_report["runtimes_here"][runtime][name]["computes_right"] is True
        except (KeyError, TypeError):  # no report, an old one, or one edited by hand: nothing recorded
            return False

    def expected_sha256(self, name: str) -> str | None:
        """The hash the manifest (export files) or the quant report (int8 files) gives for `name`."""
        m = self.manifest
        export = {FLOAT: m.get("onnx"), WEIGHTS: m.get("weights"), FP16: m.get("fp16")}
        if name in export:
            return (export[name] or {}).get("sha256")
        files = (self.quant_report or {}).get("files", {})
        if name == PROBE:
            return ((self.quant_report or {}).get("probe") or {}).get("sha256")
        return (files.get(name) or {}).get("sha256")

    def verified(self, name: str) -> Path:
        """`name` in this folder, checked against the hash recorded for it: a file copied in from another
        export, or changed since, is refused in one line instead of being used."""
        from elir_edge.common.files import sha256_file

        path = self.path / name
        if not path.is_file():
            stage = "quantize" if name in INT8_FILES + (QUANT_REPORT, PROBE) else "export"
            raise UserError(f"{path} is missing from the export folder: run `elir-edge {stage}` again")
        want = self.expected_sha256(name)
        if want is not None and sha256_file(path) != want:
            writer = QUANT_REPORT if name in INT8_FILES + (PROBE,) else MANIFEST
            stage = "quantize" if writer == QUANT_REPORT else "export"
            raise UserError(f"{path} is not the file its {writer} describes (sha256 differs: copied from another "
                            f"export, or changed since): run `elir-edge {stage}` again")
        return path

    @classmethod
    def check_artifact(cls, artifact: Path) -> None:
        """An artifact about to be run or built: if it is one of an export folder's recorded files, it must be
        the file recorded there (runtime.open_runner and engines.build_engine ask before any work)."""
        folder = cls.of(artifact)
        if folder is not None and Path(artifact).name in EXPORT_FILES + INT8_FILES:
            folder.verified(Path(artifact).name)

    def stale_files(self) -> list[str]:
        """Files of an earlier quantize or build beside the export's own: they no longer match a new export."""
        return sorted(p.name for p in self.path.iterdir() if p.name not in EXPORT_FILES and not p.name.startswith("."))
