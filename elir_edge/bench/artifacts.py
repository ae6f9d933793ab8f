"""The artifacts a bench run opens: each with each runtime it runs on, with bench's runner options (the
driver and every Ray worker open them the same way)."""

from __future__ import annotations

from pathlib import Path

from elir_edge.bench.options import BenchOptions
from elir_edge.runtime.open import RunnerOptions, open_runner
from elir_edge.runtime.runner import Runner


def artifact_runtimes(opts: BenchOptions) -> list[tuple[Path, str]]:
    """Each artifact with each runtime it runs on: every .onnx on each of --runtime, anything else once."""
    return [(Path(p), rt) for p in opts.engines for rt in (opts.runtimes if Path(p).suffix == ".onnx" else ["ort"])]


def open_artifact(path: Path, opts: BenchOptions, runtime: str = "ort", spin: bool = True) -> Runner:
    """Any artifact's runner (runtime.open_runner) with bench's options."""
    return open_runner(path, RunnerOptions(runtime=runtime, threads=opts.threads, provider=opts.provider, spin=spin,
                                           device=opts.device, half=opts.half, cuda_graph=opts.cuda_graph))
