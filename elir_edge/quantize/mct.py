"""Post-training INT8 quantization with Sony's Model Compression Toolkit, configured for TensorRT.

The target platform capabilities (TPC) describe TensorRT's explicit INT8: signed symmetric
activations (zero point 0), per-channel symmetric int8 weights, float biases. MCT picks the
thresholds (error method, bias correction, outlier z-threshold, optional GPTQ) on the calibration
batches; the result is exported with the TorchScript exporter (MCT's own exporter fails on torch >= 2.9,
see shared FINDINGS) into standard QuantizeLinear/DequantizeLinear.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import time
import warnings

import onnx
import torch

from elir_edge.common.memory import memory_gb
from elir_edge.common.progress import new_line, progress_line
from elir_edge.quantize.mct_lean import (
    grids_where_kept,
    lean_statistics,
    skip_unread_histograms,
    streamed_statistics,
    validate_once,
)
from elir_edge.quantize.options import PTQOptions


def import_mct():
    """model_compression_toolkit, imported the first time on a thread of its own. pulp (MCT imports it) keeps the
    ImportError of each solver it does not find, traceback and all; a traceback keeps alive the frames that were
    importing, and a frame outlives its call with its locals. Imported inside quantize_module, MCT's quantized
    model (1.35 GB at bfr 512 px) and the calibration batches stayed until the process ended; a worker thread's
    frames hold nothing of ours."""
    from concurrent.futures import ThreadPoolExecutor

    if "model_compression_toolkit" not in sys.modules:
        with ThreadPoolExecutor(1, thread_name_prefix="import-mct") as pool:
            pool.submit(importlib.import_module, "model_compression_toolkit").result()
    return sys.modules["model_compression_toolkit"]


def tensorrt_tpc():
    """Signed symmetric int8 activations everywhere, per-channel symmetric int8 kernels, float biases."""
    import model_compression_toolkit.target_platform_capabilities.schema.mct_current_schema as schema
    from mct_quantizers import QuantizationMethod
    from model_compression_toolkit.target_platform_capabilities.constants import (
        BIAS_ATTR,
        KERNEL_ATTR,
    )

    def attr(enabled: bool, bits: int, per_channel: bool):
        return schema.AttributeQuantizationConfig(
            weights_quantization_method=QuantizationMethod.SYMMETRIC, weights_n_bits=bits,
            weights_per_channel_threshold=per_channel, enable_weights_quantization=enabled, lut_values_bitwidth=None)

    op = schema.OpQuantizationConfig(
        default_weight_attr_config=attr(False, 8, False),
        attr_weights_configs_mapping={KERNEL_ATTR: attr(True, 8, True), BIAS_ATTR: attr(False, 32, False)},
        activation_quantization_method=QuantizationMethod.SYMMETRIC, activation_n_bits=8,
        supported_input_activation_n_bits=8, enable_activation_quantization=True, quantization_preserving=False,
        fixed_scale=None, fixed_zero_point=None, simd_size=None, signedness=schema.Signedness.SIGNED)
    opsets = tuple(schema.OperatorsSet(name=n) for n in (schema.OperatorSetNames.CONV,
                                                         schema.OperatorSetNames.CONV_TRANSPOSE))
    return schema.TargetPlatformCapabilities(
        default_qco=schema.QuantizationConfigOptions(quantization_configurations=(op,)),
        tpc_minor_version=1, tpc_patch_version=0, tpc_platform_type="tensorrt", operator_set=opsets,
        fusing_patterns=None, add_metadata=False, name="elir_edge_tensorrt_int8")


STATISTICS = "Statistics Collection"  # MCT's name for its pass over the calibration batches
# MCT's modules whose own tqdm loops are the long phases of PTQ
MCT_LOOPS = ("model_compression_toolkit.core.quantization_prep_runner",
             "model_compression_toolkit.core.common.quantization.quantization_params_generation.qparams_computation")


class MctProgress:
    """Stands in for the tqdm of MCT's long loops (statistics collection over the calibration batches, the
    per-node quantization-parameter search): a progress line with elapsed time and an estimate of what
    remains, and each phase's time and memory kept for the report (`phases`)."""

    def __init__(self, stream=None, quiet: bool = False, every_s: float = 10.0):
        self.stream, self.quiet, self.every_s = stream or sys.stderr, quiet, every_s
        self.phases: list[dict] = []
        self.totals: dict[str, int] = {}  # lengths of MCT loops over generators, known to the caller

    def __call__(self, iterable=None, desc: str = "", total: int | None = None, **_):
        if total is None:
            total = _len(iterable) or self.totals.get(desc)
        return self._loop(iterable, desc or "MCT", total)

    def _loop(self, iterable, desc, total):
        start = last = time.perf_counter()
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        i = 0
        if not self.quiet:
            new_line(self.stream)
        for i, item in enumerate(iterable, 1):
            yield item
            now = time.perf_counter()
            if not self.quiet and (tty or now - last >= self.every_s or i == total):
                last = now
                print(("\r" if tty else "") + progress_line(desc, i, total, now - start),
                      end="" if tty else "\n", file=self.stream, flush=True)
        if tty and not self.quiet:
            print(file=self.stream, flush=True)
        self.phases.append({"phase": desc, "items": i, "seconds": round(time.perf_counter() - start, 2),
                            **memory_gb()})

    def finish(self, total_s: float) -> list[dict]:
        """The phases, with what MCT did outside its loops (graph preparation, corrections, model building)."""
        inside = sum(p["seconds"] for p in self.phases)
        return self.phases + [{"phase": "rest of MCT (graph preparation, corrections, model building)",
                               "seconds": round(total_s - inside, 2), **memory_gb()}]


def _len(iterable):
    try:
        return len(iterable)
    except TypeError:
        return None


def release_memory() -> None:
    """Collects MCT's reference cycles and hands freed heap back to the system, so a stage after MCT does not run
    on top of MCT's high-water mark."""
    import gc

    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Hands the heap freed so far back to the system (glibc's malloc_trim): what objects without reference cycles
    (sessions, graphs) left behind, without a collection's walk over every object."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory stays with the process, nothing else changes
        pass


@contextlib.contextmanager
def _quiet():
    """MCT prints progress bars and INFO lines per node; our own progress replaces them."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    logging.getLogger("Model Compression Toolkit").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old


def quantize_module(module: torch.nn.Module, batches: list[tuple[torch.Tensor, ...]], opts: PTQOptions,
                    progress: MctProgress | None = None):
    """MCT PTQ (or GPTQ) of `module` (inputs as in `batches`); returns MCT's quantized torch module. With
    `progress`, MCT's long loops report through it (and it keeps their times and memory)."""
    mct = import_mct()
    qc = mct.core.QuantizationConfig(
        activation_error_method=mct.core.QuantizationErrorMethod[opts.error_method.upper()],
        weights_error_method=mct.core.QuantizationErrorMethod[opts.weights_error_method.upper()],
        weights_bias_correction=opts.bias_correction, z_threshold=opts.z_threshold,
        shift_negative_activation_correction=False,  # a fix for unsigned activations; ours are signed
        concat_threshold_update=True)  # one scale for all inputs of a Concat (TensorRT rule R8)
    core = mct.core.CoreConfig(quantization_config=qc)

    def gen():
        for b in batches:
            yield list(b)

    patched = []
    if progress is not None:
        progress.totals[STATISTICS] = len(batches)  # MCT iterates our generator once for its statistics
        for name in MCT_LOOPS:
            mod = importlib.import_module(name)
            patched.append((mod, mod.tqdm))
            mod.tqdm = progress
    t0 = time.perf_counter()
    try:
        with _quiet(), lean_statistics(weighted_histograms=opts.error_method == "hmse"), \
                skip_unread_histograms(opts.error_method), streamed_statistics(), validate_once(), \
                grids_where_kept():
            qmodel = _run_mct(mct, module, gen, core, opts)
    finally:
        for mod, real in patched:
            mod.tqdm = real
    if progress is not None:
        progress.phases = progress.finish(time.perf_counter() - t0)
    return qmodel


def _run_mct(mct, module, gen, core, opts):
    if opts.gptq_epochs > 0:
        gptq = mct.gptq.get_pytorch_gptq_config(n_epochs=opts.gptq_epochs)
        qmodel, _ = mct.gptq.pytorch_gradient_post_training_quantization(
            module, gen, gptq_config=gptq, core_config=core, target_platform_capabilities=tensorrt_tpc())
    else:
        qmodel, _ = mct.ptq.pytorch_post_training_quantization(
            module, gen, core_config=core, target_platform_capabilities=tensorrt_tpc())
    return qmodel


def export_quantized(qmodel: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str],
                     free_size: bool = False) -> onnx.ModelProto:
    """TorchScript export of MCT's model: its fake-quant ops become QuantizeLinear/DequantizeLinear; with
    `free_size`, the image's height and width stay free (traced on a small example, fixed later). Give it the
    only reference to the model: MCT's model (each shared weight once per unrolled step: 1.35 GB at bfr 512 px)
    goes as soon as it is traced, and the graph is read from the exporter's buffer in place, not from a copy."""
    from elir_edge.exporter.onnx_graph import OPSET, free_axes

    from elir_edge.quantize.qdq_rewrite import dedupe_initializers

    buf = io.BytesIO()
    with _quiet(), torch.no_grad(), streamed_statistics():
        torch.onnx.export(qmodel, example, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["hq"], do_constant_folding=True,
                          dynamic_axes=free_axes(names, batch=False) if free_size else None)
    del qmodel
    release_memory()
    model = onnx.ModelProto()
    with buf.getbuffer() as view:
        model.ParseFromString(view)
    del buf
    dedupe_initializers(model)  # MCT's model holds each shared weight once per unrolled step: one copy from here on
    return model
