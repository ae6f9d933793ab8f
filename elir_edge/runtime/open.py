"""Pick the runner for an artifact: .onnx -> ONNX Runtime or OpenVINO; an engine -> the backend its manifest
names (TensorRT-RTX or TensorRT), after checking the manifest against the file and this machine; an
export's weights.safetensors -> the looped PyTorch model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from elir_edge.errors import UserError
from elir_edge.model.export_folder import ExportFolder
from elir_edge.runtime.engine_manifest import read_engine_manifest, source_onnx
from elir_edge.runtime.interface import read_metadata
from elir_edge.runtime.ort import OrtRunner
from elir_edge.runtime.runner import Interface, Runner

ENGINE_SUFFIXES = (".trt", ".engine", ".plan")
RUNTIMES = {"ort": "onnxruntime", "openvino": "openvino"}  # the runtimes of .onnx artifacts -> the module each needs


@dataclass(frozen=True)
class RunnerOptions:
    """How to run an artifact; each field is read by the backends named beside it."""
    runtime: str = "ort"  # .onnx: "ort" (ONNX Runtime) or "openvino"
    threads: int | None = None  # ONNX Runtime, OpenVINO, PyTorch on the CPU
    provider: str = "cpu"  # ONNX Runtime: cpu, cuda, tensorrt (onnxruntime-gpu)
    spin: bool = True  # ONNX Runtime: False makes its threads sleep between runs (runners timed in turns)
    device: str = "cpu"  # PyTorch weights: cpu or cuda
    half: bool = False  # PyTorch weights on cuda: fp16
    cuda_graph: bool = False  # engines, and PyTorch on cuda: replay one inference as a CUDA graph


def open_engine(path: Path, opts: RunnerOptions) -> Runner:
    """An engine's runner, described by the metadata of the ONNX it was built from (kept beside it)."""
    manifest = read_engine_manifest(path)
    meta = read_metadata(source_onnx(path, manifest))
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
    return opener(path, plan, manifest, opts.cuda_graph, meta)


def open_weights(path: Path, opts: RunnerOptions) -> Runner:
    """An export folder's weights.safetensors -> the looped PyTorch model, with the interface the export's
    manifest describes (there is no graph to read it from)."""
    import json

    import torch

    from elir_edge.model.folded import load_folded
    from elir_edge.runtime.pytorch import TorchRunner

    if opts.threads:
        torch.set_num_threads(opts.threads)
    folder = ExportFolder(path.parent)
    s = folder.settings
    try:
        model = load_folded(folder)
    except UserError:
        raise
    except Exception as e:  # a manifest or weights file from elsewhere, or damaged
        raise UserError(f"{path} cannot be loaded as an export's folded weights ({type(e).__name__}): "
                        "export the checkpoint again") from None
    meta = {"task": s.task, "arch": json.dumps(folder.arch), "k_steps": str(s.k_steps), "sigma_s": str(s.sigma_s)}
    interface = Interface(meta, s.height, s.width, 1, folder.latent_channels, needs_eps=True)
    return TorchRunner(model, path, interface, opts.device, opts.half, opts.cuda_graph)


def open_runner(path: Path, opts: RunnerOptions = RunnerOptions()) -> Runner:
    """The runner for any artifact: .onnx (ONNX Runtime with `opts.provider`, or OpenVINO), an engine
    (TensorRT/-RTX), or an export's weights.safetensors (PyTorch on `opts.device`, fp16 with `opts.half`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such artifact: give a model.onnx, an engine or weights.safetensors written "
                        "by elir-edge")
    if (opts.device != "cpu" or opts.half) and path.suffix != ".safetensors":
        raise UserError(f"--device/--half apply to PyTorch weights (weights.safetensors), not to {path.name}")
    if path.suffix == ".safetensors":
        return open_weights(path, opts)  # load_folded checks the weights against the manifest
    ExportFolder.check_artifact(path)  # a file copied in from another export is refused, not run
    if opts.runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {opts.runtime!r}: use {' or '.join(RUNTIMES)}")
    if opts.runtime == "openvino" and path.suffix != ".onnx":
        raise UserError(f"--runtime openvino runs .onnx files, not {path.name}")
    if path.suffix == ".onnx":
        if opts.runtime == "openvino":
            from elir_edge.runtime.openvino import OpenVinoRunner

            return OpenVinoRunner(path, opts.threads)
        return OrtRunner(path, opts.threads, opts.provider, opts.spin)
    if path.suffix in ENGINE_SUFFIXES:
        return open_engine(path, opts)
    raise UserError(f"{path}: unknown artifact type {path.suffix!r}: give an .onnx file or an engine "
                    f"({', '.join(ENGINE_SUFFIXES)})")
