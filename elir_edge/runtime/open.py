"""Pick the runner for an artifact: .onnx -> ONNX Runtime; an engine -> the backend its manifest names
(TensorRT-RTX or TensorRT), after checking the manifest against the file and this machine."""

from __future__ import annotations

import hashlib
from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.model.export_folder import EXPORT_FILES, INT8_FILES, ExportFolder
from elir_edge.runtime.engine_manifest import read_engine_manifest, source_onnx
from elir_edge.runtime.ort import OrtRunner

ENGINE_SUFFIXES = (".trt", ".engine", ".plan")
KNOWN = EXPORT_FILES + INT8_FILES  # the files of an export folder whose hashes its manifest or report records


def open_engine(path: Path, cuda_graph: bool = False):
    """An engine's runner; `graph_path` names the ONNX it was built from (its metadata describe it)."""
    manifest = read_engine_manifest(path)
    graph = source_onnx(path, manifest)
    plan = path.read_bytes()
    if manifest.get("engine_sha256") and hashlib.sha256(plan).hexdigest() != manifest["engine_sha256"]:
        raise UserError(f"{path} is not the engine its manifest describes (damaged, truncated or replaced): "
                        "build it again with `elir-edge build`")
    builder = manifest.get("builder")
    if builder == "tensorrt-rtx":
        from elir_edge.runtime.tensorrt_rtx import open_tensorrt_rtx as opener
    elif builder == "tensorrt":
        from elir_edge.runtime.tensorrt import open_tensorrt as opener
    else:
        raise UserError(f"{path}: its manifest names no known builder ({builder!r}): build it with `elir-edge build`")
    runner = opener(path, plan, manifest, cuda_graph)
    runner.graph_path, runner.manifest = graph, manifest
    return runner


def open_weights(path: Path, threads: int | None = None, device: str = "cpu", half: bool = False,
                 cuda_graph: bool = False):
    """An export folder's weights.safetensors -> the looped PyTorch model, with the interface the export's
    manifest describes (there is no graph to read it from)."""
    import json

    import torch

    from elir_edge.model.folded import load_folded
    from elir_edge.runtime.pytorch import TorchRunner

    if threads:
        torch.set_num_threads(threads)
    folder = ExportFolder(path.parent)
    s, c = folder.settings, folder.latent_channels
    try:
        model = load_folded(folder)
    except UserError:
        raise
    except Exception as e:  # a manifest or weights file from elsewhere, or damaged
        raise UserError(f"{path} cannot be loaded as an export's folded weights ({type(e).__name__}): "
                        "export the checkpoint again") from None
    runner = TorchRunner(model, path.name, device, half, cuda_graph)
    runner.interface = ({"task": s.task, "image_size": f"{s.height}x{s.width}", "batch": "1",
                         "arch": json.dumps(folder.arch), "k_steps": str(s.k_steps), "sigma_s": str(s.sigma_s)},
                        {"lq": [1, 3, s.height, s.width], "eps": [1, c, s.height // 8, s.width // 8]})
    return runner


RUNTIMES = ("ort", "openvino")  # for .onnx artifacts


def open_runner(path: Path, threads: int | None = None, provider: str = "cpu", cuda_graph: bool = False,
                device: str = "cpu", half: bool = False, runtime: str = "ort", spin: bool = True):
    """The runner for any artifact: .onnx (ONNX Runtime with `provider`, or OpenVINO), an engine
    (TensorRT/-RTX), or an export's weights.safetensors (PyTorch on `device`, fp16 with `half`).
    spin=False: ONNX Runtime's threads sleep between runs, for runners timed in turns."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx, an engine or weights.safetensors written "
                        "by elir-edge")
    if (device != "cpu" or half) and path.suffix != ".safetensors":
        raise UserError(f"--device/--half apply to PyTorch weights (weights.safetensors), not to {path.name}")
    folder = ExportFolder.of(path)
    if folder is not None and path.name in KNOWN:
        folder.verified(path.name)  # a file copied in from another export is refused, not run
    if path.suffix == ".safetensors":
        return open_weights(path, threads, device, half, cuda_graph)
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}: use {' or '.join(RUNTIMES)}")
    if runtime == "openvino" and path.suffix != ".onnx":
        raise UserError(f"--runtime openvino runs .onnx files, not {path.name}")
    if path.suffix == ".onnx":
        if runtime == "openvino":
            from elir_edge.runtime.openvino import OpenVinoRunner

            return OpenVinoRunner(path, threads)
        return OrtRunner(path, threads, provider, spin)
    if path.suffix in ENGINE_SUFFIXES:
        return open_engine(path, cuda_graph)
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or an engine "
                    f"({', '.join(ENGINE_SUFFIXES)})")
