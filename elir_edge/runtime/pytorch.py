"""The looped PyTorch model as a runner: the reference the exported graphs are compared with, and, on an
NVIDIA GPU (`device="cuda"`, optionally `half`, `cuda_graph`), the way the paper measured its FPS, so our
engines stand beside the paper's method on the same card.

On the GPU, `timed` splits a run with CUDA events the way the engine runner does: host->device copy,
enqueue (host time of the forward call, which only launches kernels), compute (a second forward queued
behind the first, so host launch gaps are not counted), device->host copy, end to end, and the host wall
time of the plain run. Copies go through pinned host tensors, as the engine runner's do, so the two rows'
h2d and end-to-end figures time the same kind of copy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from elir_edge.errors import UserError
from elir_edge.runtime.runner import Interface, Runner


class Staging:
    """The host side of the copies to and from the GPU: one page-locked tensor per name and shape, filled
    from numpy before the timed copy and copied asynchronously (`non_blocking`), like the engine runner's
    pinned buffers; a copy from pageable memory is staged by the driver through a pinned buffer of its own
    first (CUDA C++ Best Practices Guide, "Pinned Memory"). Without `pin` (the CPU) numpy's memory is used."""

    def __init__(self, torch, pin: bool):
        self.torch, self.pin, self.tensors = torch, pin, {}

    def _tensor(self, name: str, shape: tuple):
        t = self.tensors.get(name)
        if t is None or tuple(t.shape) != tuple(shape):
            t = self.tensors[name] = self.torch.empty(tuple(shape), dtype=self.torch.float32, pin_memory=True)
        return t

    def put(self, name: str, array: np.ndarray):
        """`array` in host memory the GPU copies from (a no-copy view without `pin`)."""
        if not self.pin:
            return self.torch.from_numpy(array)
        return self._tensor(name, array.shape).copy_(self.torch.from_numpy(array))

    def take(self, out):
        """`out` on its way to the host as float32, queued (with `pin`: valid after the next synchronize)."""
        if not self.pin:
            return out.float().cpu()
        return self._tensor("out", out.shape).copy_(out, non_blocking=True)


class TorchRunner(Runner):
    def __init__(self, model, path: Path, interface: Interface, device: str = "cpu", half: bool = False,
                 cuda_graph: bool = False):
        import torch

        if device not in ("cpu", "cuda"):
            raise UserError(f"unknown --device {device!r}: use cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: this PyTorch sees no CUDA GPU (torch.cuda.is_available() is False): "
                            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use --device cpu")
        if (half or cuda_graph) and device != "cuda":
            raise UserError("--half and --cuda-graph need --device cuda (PyTorch runs fp16 and CUDA graphs on the GPU)")
        self.torch, self.path, self.name, self.interface = torch, Path(path), Path(path).name, interface
        self.device, self.on_gpu = torch.device(device), device == "cuda"
        self.dtype = torch.float16 if half else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        self.kind = "PyTorch eager (looped)" if device == "cpu" else \
            f"PyTorch CUDA {'fp16' if half else 'fp32'}{' + CUDA graph' if cuda_graph else ''} (looped)"
        self.cuda_graph, self.graph, self.static = cuda_graph, None, None
        self.staging = Staging(torch, pin=self.on_gpu)
        if self.on_gpu:
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(6)]

    def _forward(self, lq, eps):
        if self.graph is not None:
            self.static[0].copy_(lq)
            self.static[1].copy_(eps)
            self.graph.replay()
            return self.static[2]
        return self.model(lq, eps)

    def _capture(self, lq, eps) -> None:
        """A CUDA graph of one forward at this shape (warmed up on a side stream first, as PyTorch requires)."""
        torch = self.torch
        static_lq, static_eps = lq.clone(), eps.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.model(static_lq, static_eps)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            out = self.model(static_lq, static_eps)
        self.static = (static_lq, static_eps, out)

    def _ready(self, lq, eps) -> None:
        """With `cuda_graph`, a graph captured at this input shape: one of another shape would replay onto
        static tensors that do not fit the inputs."""
        if self.cuda_graph and (self.graph is None or tuple(self.static[0].shape) != tuple(lq.shape)):
            self._capture(lq, eps)

    def _inputs(self, host: tuple):
        return tuple(h.to(self.device, self.dtype, non_blocking=True) for h in host)

    def _stage(self, lq: np.ndarray, eps: np.ndarray) -> tuple:
        return self.staging.put("lq", lq), self.staging.put("eps", eps)

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        with self.torch.inference_mode():
            x, e = self._inputs(self._stage(lq, eps))
            self._ready(x, e)
            out = self.staging.take(self._forward(x, e))
            if self.on_gpu:
                self.torch.cuda.synchronize()
            return out.numpy().copy() if self.staging.pin else out.numpy()

    def timed(self, lq: np.ndarray, eps: np.ndarray | None) -> dict | np.ndarray:
        """CUDA-event breakdown of one run (milliseconds); on the CPU the plain run (the host wall clock is all)."""
        if not self.on_gpu:
            return self(lq, eps)
        torch, (e0, e1, e2, e3, e4, e5) = self.torch, self.events
        with torch.inference_mode():
            staged = self._stage(lq, eps)
            self._ready(*self._inputs(staged))
            t0 = time.perf_counter()
            e0.record()
            x, e = self._inputs(staged)
            e1.record()
            t1 = time.perf_counter()
            out = self._forward(x, e)
            enqueue_ms = (time.perf_counter() - t1) * 1000  # launches only: the GPU runs them asynchronously
            e2.record()
            host = self.staging.take(out)
            e3.record()
            torch.cuda.synchronize()
            wall_ms = (time.perf_counter() - t0) * 1000
            self._forward(x, e)
            e4.record()
            self._forward(x, e)
            e5.record()
            torch.cuda.synchronize()
        del host
        return {"h2d_ms": e0.elapsed_time(e1), "enqueue_ms": enqueue_ms, "compute_ms": e4.elapsed_time(e5),
                "d2h_ms": e2.elapsed_time(e3), "end_to_end_ms": e0.elapsed_time(e3), "wall_ms": wall_ms}

    def close(self) -> None:
        self.graph = self.static = None
        if self.on_gpu:
            self.torch.cuda.empty_cache()
