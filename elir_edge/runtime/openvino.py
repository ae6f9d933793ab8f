"""OpenVINO: the runtime users pick on Intel CPUs, on the same ONNX files as ONNX Runtime.

Inference precision is pinned to f32 (OpenVINO would otherwise run bf16/f16 on CPUs that have them), so
a row measures the runtime, not a silent change of precision; int8 Q/DQ graphs run as int8. Compiled models
go to OpenVINO's own model cache in elir-edge's cache folder: a file compiled once (quantize's runtime check
compiles each CPU file) opens in under half the time after, in any later process (the demo's 8-bit CPU file:
3.6 -> 1.6 s on a Zen 4, benchmarks/RESULTS.md)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import locale
import threading
from pathlib import Path

import numpy as np

from elir_edge.common.cache import cache_dir, prune
from elir_edge.errors import UserError
from elir_edge.runtime.batching import in_batches
from elir_edge.runtime.cpu_roof import cpu_flags
from elir_edge.runtime.interface import onnx_interface
from elir_edge.runtime.runner import Runner

INSTALL = "pip install 'elir-edge[openvino]'"
_COMPILING = {"count": 0, "locale": None}  # compiles in flight in this process, and the locale before the first
_COMPILING_LOCK = threading.Lock()


class OpenVinoRunner(Runner):
    on_gpu = False
    kind = "OpenVINO CPU"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise UserError(f"OpenVINO is not installed: {INSTALL}, or leave --runtime openvino out") from None
        self.path, self.name = Path(path), Path(path).name
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = _compiled(ov, self.path, config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with multi-line texts
            raise UserError(f"{path} cannot be loaded by OpenVINO ({str(e).strip().splitlines()[0][:150]}): "
                            "re-export it with `elir-edge export`") from None
        self.request = self.compiled.create_infer_request()
        self.interface = onnx_interface(self.path)

    def run_batch(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        feeds = {"lq": lq, **({"eps": eps} if self.interface.needs_eps else {})}
        return np.array(self.request.infer(feeds)[self.compiled.outputs[0]], np.float32)

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        return in_batches(self.run_batch, self.interface.batch or len(lq), lq, eps)


def _compiled(ov, path: Path, config: dict):
    """OpenVINO's compile of `path`, through its model cache where elir-edge has a cache folder."""
    core, cached = ov.Core(), cache_dir(f"openvino/{_this_cpu(ov.__version__)}")
    if cached is not None:  # OpenVINO keys entries by the model's content and the config, skips a failed write
        config = {**config, "CACHE_DIR": str(cached)}  # and compiles again over an unreadable entry (all tried)
        # read entries into memory, not mapped: a process that missed at the same time may rewrite the entry in
        # place (as root it can), and a mapped file cut short under a reader is a SIGBUS, a read one a recompile
        core.set_property({"ENABLE_MMAP": False})
    with _locale_kept():
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    if cached is not None:
        prune(cached.parent, "*.blob")  # OpenVINO's entries: <hash>.blob
    return compiled


@contextlib.contextmanager
def _locale_kept():
    """OpenVINO sets the C locale while it writes a cache entry, then puts back the locale it found: two compiles
    at once (quantize checks its files side by side) can leave the process in the C locale, where Python reads
    and writes text as ASCII (seen here: 2 runs in 3). The locale from before the first of the compiles in flight
    is put back when the last of them ends."""
    with _COMPILING_LOCK:
        if _COMPILING["count"] == 0:
            _COMPILING["locale"] = locale.setlocale(locale.LC_ALL)
        _COMPILING["count"] += 1
    try:
        yield
    finally:
        with _COMPILING_LOCK:
            _COMPILING["count"] -= 1
            if _COMPILING["count"] == 0:
                locale.setlocale(locale.LC_ALL, _COMPILING["locale"])


@functools.cache
def _this_cpu(version: str) -> str:
    """A name for this kind of CPU (its flags) and OpenVINO version: a cache folder shared by machines of other
    CPUs (a home folder on a cluster) never hands one a model OpenVINO compiled for another."""
    return hashlib.sha256(f"{' '.join(sorted(cpu_flags()))}|{version}".encode()).hexdigest()[:16]
