"""ONNX Runtime: the session factory every stage uses, and the runner for .onnx artifacts (CPU, or its
CUDA/TensorRT execution providers, never a silent CPU fallback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elir_edge.errors import UserError
from elir_edge.runtime.batching import in_batches
from elir_edge.runtime.interface import onnx_interface
from elir_edge.runtime.runner import Runner

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}


# ONNX Runtime (1.21 on, 1.32 here) turns the float bias of a Q/DQ convolution into int32 on the scale
# x_scale * w_scale, computed in the scales' own type. With fp16 scales the product underflows (fp16's least value
# is 6e-8) to 0 and the bias saturates: bfr's int8+fp16 file came out at 6.9 dB vs float, 38.8 dB with this
# transformer off, the same as its arithmetic with every optimization off. fp32 scales need it (QLinearConv).
FP16_BIAS_TRANSFORMER = "WeightBiasQuantization"


def miscomputing_transformers(model) -> list[str]:
    """ONNX Runtime's graph transformers that would compute this graph (an onnx.ModelProto) wrongly."""
    from onnx import TensorProto

    half = {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT16}
    fp16_qdq = any(n.op_type == "DequantizeLinear" and len(n.input) > 1 and n.input[1] in half
                   for n in model.graph.node)
    return [FP16_BIAS_TRANSFORMER] if fp16_qdq else []


def ort_session(path: Path, threads: int | None = None, providers: list[str] | None = None, spin: bool = True,
                graph=None):
    """A session on an ONNX file; `graph`: the file's load (without external data), if the caller made it."""
    import onnx

    graph = graph if graph is not None else onnx.load(str(path), load_external_data=False)
    return ort_session_from_bytes(str(path), threads, providers, spin, miscomputing_transformers(graph))


def ort_session_from_bytes(model: bytes | str, threads: int | None = None, providers: list[str] | None = None,
                           spin: bool = True, skip: list[str] | None = None):
    """A session (CPU unless told) from a file path or serialized model bytes, without the transformers `skip`
    names. spin=False: its threads sleep as soon as a run ends (sessions timed in turns must not steal each
    other's cores by spinning)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: constant-folding notes about fp16 nodes are not the user's concern
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=providers or ["CPUExecutionProvider"],
                                disabled_optimizers=skip or None)


def reference_session(model: bytes | str):
    """A CPU session with every graph optimization off: Q/DQ pairs stay separate ops around float convs, so an
    int8 file is evaluated by its own arithmetic, with no int8 kernel (the reference runtime.probe holds
    runtimes to)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def session_with_outputs(model, names: list[str], threads: int | None = None):
    """A session on an in-memory graph that also returns the named intermediate tensors (float32)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                          for n in names if n not in have)
    return ort_session_from_bytes(m.SerializeToString(), threads, skip=miscomputing_transformers(model))


class OrtRunner(Runner):
    def __init__(self, path: Path, threads: int | None = None, provider: str = "cpu", spin: bool = True):
        self.path, self.name = Path(path), Path(path).name
        providers = _providers(provider)
        self.on_gpu = provider != "cpu"
        self.kind = "ONNX Runtime " + {"cpu": "CPU", "cuda": "CUDA EP", "tensorrt": "TensorRT EP"}[provider]
        import onnx

        try:
            graph = onnx.load(str(self.path), load_external_data=False)  # once: the session's and the interface's
            self.session = ort_session(self.path, threads, providers, spin, graph)
        except Exception as e:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
            raise UserError(f"{path} cannot be loaded by ONNX Runtime ({str(e).splitlines()[0][:150]}): "
                            "re-export it with `elir-edge export`") from None
        active = self.session.get_providers()[0]
        if active != providers[0]:  # ONNX Runtime falls back to the CPU when a GPU provider fails to start
            raise UserError(f"ONNX Runtime could not start {providers[0]} for {path} (it fell back to {active}): "
                            "check the CUDA/cuDNN libraries onnxruntime-gpu needs, or use --provider cpu")
        self.interface = onnx_interface(self.path, graph)

    def run_batch(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        feeds = {"lq": lq, **({"eps": eps} if self.interface.needs_eps else {})}
        return self.session.run(None, feeds)[0]

    def __call__(self, lq: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        return in_batches(self.run_batch, self.interface.batch or len(lq), lq, eps)


def _providers(provider: str) -> list[str]:
    """The execution providers to ask for, best first, always ending on the CPU; a missing one is an error,
    not a silent fallback, so a timing never claims a device it did not use."""
    import onnxruntime as ort

    if provider not in ORT_PROVIDERS:
        raise UserError(f"unknown provider {provider!r}: use one of {', '.join(ORT_PROVIDERS)}")
    wanted = ORT_PROVIDERS[provider]
    have = ort.get_available_providers()
    if wanted not in have:
        raise UserError(f"ONNX Runtime here has no {wanted} (it has {', '.join(have)}): "
                        "install onnxruntime-gpu on a machine with an NVIDIA GPU, or use --provider cpu")
    chain = list(ORT_PROVIDERS.values())[: list(ORT_PROVIDERS).index(provider) + 1][::-1]
    return [p for p in chain if p in have]

