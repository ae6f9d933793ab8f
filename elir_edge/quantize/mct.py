"""Post-training INT8 quantization with Sony's Model Compression Toolkit, configured for TensorRT.

The target platform capabilities (TPC) describe TensorRT's explicit INT8: signed symmetric
activations (zero point 0), per-channel symmetric int8 weights, float biases. MCT picks the
thresholds (error method, bias correction, outlier z-threshold, optional GPTQ) on the calibration
batches; the result is exported with the TorchScript exporter (MCT's own exporter fails on torch >= 2.9,
see shared FINDINGS) into standard QuantizeLinear/DequantizeLinear.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import sys
import time
import warnings

import numpy as np
import onnx
import torch

from elir_edge.common.progress import new_line, progress_line
from elir_edge.quantize.options import PTQOptions

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
                            **memory()})

    def finish(self, total_s: float) -> list[dict]:
        """The phases, with what MCT did outside its loops (graph preparation, corrections, model building)."""
        inside = sum(p["seconds"] for p in self.phases)
        return self.phases + [{"phase": "rest of MCT (graph preparation, corrections, model building)",
                               "seconds": round(total_s - inside, 2), **memory()}]


def _len(iterable):
    try:
        return len(iterable)
    except TypeError:
        return None


def memory() -> dict:
    """This process's resident memory now and at its peak so far, GB."""
    try:
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except (OSError, ValueError, IndexError):
        rss = float("nan")
    return {"rss_gb": round(rss, 2), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}


MERGE_EVERY = 8  # per-iteration histograms kept before they are merged into one


@contextlib.contextmanager
def lean_statistics(weighted_histograms: bool):
    """MCT 2.6.1 keeps two 2048-bin histograms per node per calibration batch until the end (memory grows
    with the calibration set: ~64 KB x nodes x batches) and fills the Hessian-weighted one even when no
    HMSE method reads it (a copy and a weighted pass over every activation). Here the per-batch histograms
    are merged every MERGE_EVERY batches with MCT's own merge (the same interpolation it applies at the end),
    and the weighted one is skipped unless HMSE asks for it."""
    from model_compression_toolkit.core.common.collectors.histogram_collector import (
        HistogramCollector,
    )
    from model_compression_toolkit.core.common.collectors.statistics_collector import (
        StatsCollector,
    )

    real_update, real_stats = HistogramCollector.update, StatsCollector.update_statistics

    def update(self, x, *args, **kwargs):
        real_update(self, x, *args, **kwargs)
        if len(self._histogram_per_iteration) >= MERGE_EVERY:
            self._merge_histograms()
            self._histogram_per_iteration = [(self._counts, self._bins)]
            self._counts = self._bins = None

    def update_statistics(self, x, weights=None):
        from model_compression_toolkit.core.common.collectors.statistics_collector import (
            standardize_tensor,
        )

        x = standardize_tensor(x)
        self.hc.update(x)
        if weighted_histograms:
            self.weighted_hc.update(x, weights)
        self.mc.update(x)
        self.mpcc.update(x)

    HistogramCollector.update, StatsCollector.update_statistics = update, update_statistics
    try:
        yield
    finally:
        HistogramCollector.update, StatsCollector.update_statistics = real_update, real_stats


HISTOGRAM_BLIND = ("mse", "hmse", "mae", "lp")  # MCT error methods that never read the quantized histogram
MSE_HISTOGRAM = ("mse", "hmse")  # those whose histogram error is MCT's _mse_error_histogram


@contextlib.contextmanager
def skip_unread_histograms(error_method: str):
    """MCT 2.6.1's activation threshold search re-bins the quantized histogram (an np.histogram of 2049 bins)
    for every candidate threshold, ~575 per node, and hands it to an error function that, for MSE, HMSE, MAE
    and Lp, never reads it: about three quarters of the search's time (43 of 52 s on the demo model). For
    those methods the re-binning is skipped, and for MSE/HMSE each round's candidates are evaluated at once
    (mse_histogram_search); the error, so every threshold, is the same (KL reads it: left as it is)."""
    from model_compression_toolkit.core.common.quantization.quantization_params_generation import (
        qparams_search,
        symmetric_selection,
    )

    real = qparams_search.qparams_selection_histogram_search_error_function
    real_search = symmetric_selection.qparams_symmetric_selection_histogram_search

    def error(error_function, bins, q_bins, counts, threshold=None, min_max_range=None):
        return error_function(q_bins, None, bins, counts, threshold, min_max_range)

    if error_method in HISTOGRAM_BLIND:
        qparams_search.qparams_selection_histogram_search_error_function = error
    if error_method in MSE_HISTOGRAM:
        symmetric_selection.qparams_symmetric_selection_histogram_search = mse_histogram_search
    try:
        yield
    finally:
        qparams_search.qparams_selection_histogram_search_error_function = real
        symmetric_selection.qparams_symmetric_selection_histogram_search = real_search


def mse_histogram_search(error_function, tensor_max, bins, counts, n_bits, n_iter=None, min_threshold=None,
                         is_signed=None):
    """MCT 2.6.1's symmetric histogram threshold search with its MSE error (qparams_search's
    qparams_symmetric_selection_histogram_search -> qparams_symmetric_iterative_minimization ->
    search_fixed_range_intervals, per tensor), with the 30 candidates of each of its 20 rounds quantized and
    scored in one array instead of one by one: the same operations on the same values, so the same threshold
    (tested against MCT's own). `error_function` is MCT's MSE (the caller only patches this in for MSE)."""
    import model_compression_toolkit.constants as c
    from model_compression_toolkit.core.common.quantization.quantizers.quantizers_helpers import quantize_tensor

    min_threshold = c.MIN_THRESHOLD if min_threshold is None else min_threshold
    signed = np.any(bins[:-1][counts != 0] < 0) if is_signed is None else is_signed

    def losses(thresholds):
        q = quantize_tensor(bins[None, :], np.asarray(thresholds, dtype=float)[:, None], n_bits, signed)
        return np.sum(np.power((q - bins)[:, :-1], 2.0) * counts, axis=1) / np.sum(counts)

    curr = max(min_threshold, tensor_max)  # get_init_threshold
    best_param, best_loss = curr, losses([curr])[0]
    range_scale = np.array([c.BOTTOM_FACTOR, c.UPPER_FACTOR])
    for n in range(c.SYMMETRIC_HISTOGRAM_N_ITER):
        prev = best_loss
        bounds = curr * range_scale
        candidates = np.linspace(start=bounds[0], stop=bounds[1], num=c.SYMMETRIC_HISTOGRAM_N_INTERVALS, dtype=float)
        scored = losses(candidates)
        curr, curr_loss = candidates[np.argmin(scored)], np.min(scored)
        improved = curr_loss < prev
        best_param = curr * improved + best_param * np.logical_not(improved)
        best_loss = curr_loss * improved + prev * np.logical_not(improved)
        if 0 < np.mean(prev - curr_loss) < c.DEFAULT_TOL:
            break
        if n % c.SYMMETRIC_HISTOGRAM_DEC_FREQ == 0:
            range_scale = range_scale * c.DEFAULT_DEC_FACTOR
            range_scale = np.array([min(range_scale[0], c.DEC_RANGE_BOTTOM), max(range_scale[1], c.DEC_RANGE_UPPER)])
    return max(min_threshold, best_param), signed


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
    import importlib

    import model_compression_toolkit as mct

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
                skip_unread_histograms(opts.error_method):
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


def export_quantized(qmodel: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str]) -> onnx.ModelProto:
    """TorchScript export of MCT's model: its fake-quant ops become QuantizeLinear/DequantizeLinear."""
    from elir_edge.exporter.onnx_graph import OPSET

    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(qmodel, example, buf, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["hq"], do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())
