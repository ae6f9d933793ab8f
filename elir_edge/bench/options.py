"""What `elir-edge bench` can be asked, without heavy imports: the CLI takes its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BenchOptions:
    engines: list[Path]
    data: Path | None = None
    lq: Path | None = None
    hq: Path | None = None
    task: str | None = None
    iterations: int = 10
    duration: float = 3.0
    warmup: float = 0.2
    threads: int | None = None
    provider: str = "cpu"  # ONNX Runtime execution provider for .onnx artifacts: cpu, cuda, tensorrt
    cuda_graph: bool = False  # replay engines (and PyTorch on CUDA) as CUDA graphs
    device: str = "cpu"  # weights.safetensors: PyTorch on cpu or cuda
    half: bool = False  # weights.safetensors on cuda: fp16
    seed: int = 0
    fid_weights: Path | None = None
    plot: Path | None = None
    json: Path | None = None  # checked before any work; written by the caller (bench.report.save_json)
    cpu_roof: bool = True  # measure this CPU's conv roof and hold every CPU row to it
    runtimes: list[str] = field(default_factory=lambda: ["ort"])  # runtimes for .onnx artifacts: ort, openvino
    roofline: list[str] = field(default_factory=list)  # device names of data/devices.json, or "all"
    report: Path | None = None  # per-image quality rows, JSON lines
    ray: str | None = None  # the quality pass on a Ray cluster: "local", "auto" or an address
    actors: int | None = None  # with ray: workers (default: the cluster's CPUs / threads)
    progress: bool = True  # a bar over the quality pass

