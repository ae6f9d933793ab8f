"""The artifacts a bench run opens: each with each runtime it runs on, with bench's runner options (the
driver and every Ray worker open them the same way)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from elir_edge.bench.options import BenchOptions
from elir_edge.runtime.choose import open_choice
from elir_edge.runtime.open import RunnerOptions, open_runner
from elir_edge.runtime.runner import Runner


def artifact_runtimes(opts: BenchOptions) -> list[tuple[Path, str]]:
    """Each artifact with each runtime it runs on: every .onnx on each of --runtime, anything else once."""
    return [(Path(p), rt) for p in opts.engines
            for rt in (opts.runtimes if Path(p).suffix == ".onnx" or Path(p).is_dir() else ["ort"])]


def chosen_files(opts: BenchOptions) -> tuple[BenchOptions, list[str]]:
    """The options with each export folder among the artifacts replaced by the CPU file chosen for each runtime
    (runtime.choose; the driver decides, so every Ray worker scores the same files), and the lines saying why."""
    engines, lines = [], []
    for path, rt in artifact_runtimes(opts):
        if not path.is_dir():
            engines.append(path)
            continue
        with open_choice(path, lambda p: open_artifact(p, opts, rt), opts.provider == "cpu") as choice:
            engines.append(choice.runner.path)
            lines.append(choice.why)
    return replace(opts, engines=list(dict.fromkeys(engines))), lines


def open_artifact(path: Path, opts: BenchOptions, runtime: str = "ort", spin: bool = True) -> Runner:
    """Any artifact's runner (runtime.open_runner) with bench's options."""
    return open_runner(path, RunnerOptions(runtime=runtime, threads=opts.threads, provider=opts.provider, spin=spin,
                                           device=opts.device, half=opts.half, cuda_graph=opts.cuda_graph))
