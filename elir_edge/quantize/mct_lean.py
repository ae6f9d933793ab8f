"""MCT 2.6.1's time and memory costs that do not change its result, removed around one run.

Each context manager replaces one MCT function for the length of a run and puts it back after; each keeps
MCT's thresholds of every grid our files keep, so those files (tests/test_quantize.py holds them to MCT's own),
but for two things: the statistics pass runs its forward on fewer torch threads than MCT's (`_Updates`), and a
convolution summed on another number of threads rounds differently in the last bits (so does MCT's own, from one
machine to another; on the demo: the TensorRT form's PSNR the same, the CPU forms' within 0.1 dB); and the
per-channel means bias correction reads are summed in another order (`per_channel`: ~1e-16 relative).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from elir_edge.common.cores import usable_cores

MERGE_EVERY = 8  # per-iteration histograms kept before they are merged into one
STATISTICS_THREADS = 1  # threads taking node statistics beside the forward
PENDING = 4  # node outputs waiting for their statistics at most


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
        means, extremes = per_channel(x, self.mc.axis)
        self.mc.update(means)
        self.mpcc.update(extremes)

    HistogramCollector.update, StatsCollector.update_statistics = update, update_statistics
    try:
        yield
    finally:
        HistogramCollector.update, StatsCollector.update_statistics = real_update, real_stats


def per_channel(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """What MCT's mean and min/max collectors need of an (N, C, ...) batch, per channel, without the transposed
    copy of it each of them makes (two copies of every activation: a quarter of the statistics pass), as arrays
    their own update turns into their state: one mean per channel (MCT averages a row of one; the same mean up to
    the order of the sum, ~1e-16), and each channel's max and min (MCT takes the max and min of the two: the same
    values). Other layouts go to MCT's collectors as they are."""
    if axis != 1 or x.ndim < 3:
        return x, x
    rows = x.reshape(*x.shape[:2], -1)
    return rows.mean(axis=(0, 2))[None], np.stack([rows.max(axis=(0, 2)), rows.min(axis=(0, 2))])


@contextlib.contextmanager
def validate_once():
    """MCT 2.6.1 checks a graph's fusing information against the whole graph (a topological sort) after every
    change to it: ~820 checks on the demo's unrolled graph (2.7 s under cProfile, ~0.8 s of wall time without it).
    Here each changed graph is checked once, with MCT's own check, when the run ends without an error: a graph
    left inconsistent still raises MCT's error, only later (MCT's mixed-precision search skips the checks so)."""
    from model_compression_toolkit.core.common.graph.base_graph import Graph

    changed, real = {}, Graph.validate

    def later(self):
        changed[id(self)] = self

    Graph.validate = later
    try:
        yield
    finally:
        Graph.validate = real
    for graph in changed.values():
        real(graph)


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


CONV_TYPES = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
RELU_TYPES = (torch.nn.ReLU, torch.relu, torch.nn.functional.relu)


@contextlib.contextmanager
def grids_where_kept():
    """MCT quantizes every node's output; our files keep its grids only at convolution inputs, and in the CPU
    forms at convolution outputs too, but for one read by a ReLU alone, whose own grid replaces it
    (qdq_rewrite: prune_activation_qdq, unsigned_relus; a Concat's inputs take the grid of the Concat a
    convolution reads). The statistics and thresholds of every other output (norms, sigmoids, the adds before a
    norm, the convolutions before a ReLU: 252 of bfr's 809 quantized nodes) were computed, then dropped. Here
    those nodes are made unquantized, with MCT's own network-editor action, as MCT sets up its statistics: no
    statistics, no threshold, no fake-quant; every grid our files keep is the same."""
    from model_compression_toolkit.core.common import model_collector
    from model_compression_toolkit.core.common.network_editors.actions import ChangeCandidatesActivationQuantConfigAttr
    from model_compression_toolkit.core.common.quantization.node_quantization_config import (
        ActivationQuantizationMode,
    )

    unquantized, real_init = ChangeCandidatesActivationQuantConfigAttr(
        quant_mode=ActivationQuantizationMode.NO_QUANT), model_collector.ModelCollector.__init__

    def init(self, graph, fw_impl, fw_info, *args, **kwargs):
        for node in list(graph.nodes):
            if node.is_activation_quantization_enabled() and not _grid_kept(graph, node):
                unquantized.apply(node, graph, fw_info)
        real_init(self, graph, fw_impl, fw_info, *args, **kwargs)

    model_collector.ModelCollector.__init__ = init
    try:
        yield
    finally:
        model_collector.ModelCollector.__init__ = real_init


def _grid_kept(graph, node) -> bool:
    readers = [e.sink_node for e in graph.out_edges(node)]
    if node.type in CONV_TYPES:
        return not (len(readers) == 1 and readers[0].type in RELU_TYPES and _read_by_a_conv(graph, readers[0]))
    return _read_by_a_conv(graph, node)


def _read_by_a_conv(graph, node) -> bool:
    return any(e.sink_node.type in CONV_TYPES for e in graph.out_edges(node))


@contextlib.contextmanager
def streamed_statistics():
    """MCT 2.6.1's statistics pass builds a model that returns the output of every node and keeps every node's
    output of a forward until the forward ends (with autograd recording it all: no `no_grad`), then updates
    each node's statistics: its peak memory is every activation of the unrolled model at once. Here each
    node's statistics take its output as the node runs, outside autograd (unless HMSE needs gradients), and
    any model MCT builds frees an output after its last consumer: the same tensors reach the same
    collectors, in the same order, so the same thresholds (up to the rounding of the forward's threads)."""
    from model_compression_toolkit.core.common import model_collector
    from model_compression_toolkit.core.common.quantization.quantization_config import (
        QuantizationErrorMethod,
    )
    from model_compression_toolkit.core.pytorch.back2framework import pytorch_model_builder as builder

    real_forward, real_infer = builder.PytorchModel.forward, model_collector.ModelCollector.infer

    def forward(self, *args):
        return lean_forward(builder, self, args, self.__dict__.get("_elir_sink"))

    def infer(self, inputs_list):
        if self.qc.activation_error_method == QuantizationErrorMethod.HMSE:
            return real_infer(self, inputs_list)
        containers = {n.name: c for n, c in zip(self.model.append2output, self.stats_containers_list)}
        with _Updates(self.fw_impl) as updates:
            def sink(node, tensors):
                updates.add(containers[node.name], tensors)

            self.model.__dict__["_elir_sink"] = (containers, sink)
            try:
                with torch.no_grad():
                    self.fw_impl.run_model_inference(self.model, inputs_list)
            finally:
                del self.model.__dict__["_elir_sink"]

    builder.PytorchModel.forward, model_collector.ModelCollector.infer = forward, infer
    try:
        yield
    finally:
        builder.PytorchModel.forward, model_collector.ModelCollector.infer = real_forward, real_infer


class _Updates:
    """Node statistics taken on STATISTICS_THREADS threads beside the forward (numpy's histograms let go of the
    GIL), the forward on the cores left (torch's idle threads spin, so on 2 cores two torch threads beside the
    statistics are slower than one: 9.8 s -> 7.6 s for the demo's pass). Since the statistics lost their
    transposed copies and the outputs no file keeps, one thread beside one torch thread is the fastest split of
    2 cores at bfr (6 batches: 21 s against 23-27 s with two statistics threads), and ties on the demo.
    Each node is updated once per batch and every update of a batch ends before the next batch starts, so each
    node's statistics see its outputs in the same order. At most PENDING outputs wait: few stay alive."""

    def __init__(self, fw_impl):
        from concurrent.futures import ThreadPoolExecutor

        self.fw_impl, self.pool, self.pending = fw_impl, ThreadPoolExecutor(STATISTICS_THREADS), []
        self.torch_threads = torch.get_num_threads()

    def add(self, container, tensors: list) -> None:
        self.pending.append(self.pool.submit(update, self.fw_impl, container, tensors))
        if len(self.pending) > PENDING:
            self.pending.pop(0).result()

    def __enter__(self) -> "_Updates":
        torch.set_num_threads(max(1, usable_cores() - STATISTICS_THREADS))
        return self

    def __exit__(self, kind, *_) -> None:
        try:
            if kind is None:  # the forward's own error (or Ctrl-C) goes on as it is
                for f in self.pending:
                    f.result()
        finally:
            self.pool.shutdown(cancel_futures=True)
            torch.set_num_threads(self.torch_threads)


def update(fw_impl, container, tensors: list) -> None:
    """One node's outputs into its statistics, as ModelCollector.infer hands them (a node of one output gives
    the tensor itself, a node of several the list)."""
    handed = tensors if len(tensors) > 1 else tensors[0]
    if isinstance(container, (list, tuple)):
        for tensor, collector in zip(handed, container):
            collector.update_statistics(fw_impl.to_numpy(tensor), None)
    else:
        container.update_statistics(fw_impl.to_numpy(handed), None)


def lean_forward(builder, model, args, sink):
    """MCT 2.6.1's PytorchModel.forward, node by node as it runs them, with each output dropped after its last
    consumer; with `sink` (node names, fn), those nodes' outputs go to fn as they are made and are not returned.
    The model's nodes are its own deep copies of the graph's, so nodes are matched by name, as MCT does."""
    streamed, fn = sink if sink is not None else ({}, None)
    free_after = _free_after(model, keep=() if sink is not None else _returned(model))
    outs, floats = {}, {}
    configurable = model.graph.get_configurable_sorted_nodes_names(builder.DEFAULT_PYTORCH_INFO)
    for i, node in enumerate(model.node_sort):
        inputs = builder._build_input_tensors_list(node, model.graph, args, outs)
        use_quant, quant_fn = model._get_activation_quantization_fn(node)
        outs[node], floats[node] = builder._run_operation(
            node, inputs, op_func=model._get_op_func(node, configurable), quantize_node_activation_fn=quant_fn,
            use_activation_quantization=use_quant)
        if node.name in streamed:
            fn(node, (floats if model.return_float_outputs else outs)[node])
        for done in free_after[i]:
            del outs[done], floats[done]
    if sink is not None:
        return None
    chosen = floats if model.return_float_outputs else outs
    if model.append2output:
        return builder._generate_outputs(model.append2output, chosen)
    outputs = builder._generate_outputs(_returned(model), chosen)
    return outputs[0] if len(outputs) == 1 else outputs


def _returned(model) -> list:
    return model.append2output or [t.node for t in model.graph.get_outputs()]


def _free_after(model, keep) -> list[list]:
    """For each position in the node order, the nodes whose outputs nothing later reads (`keep` excepted)."""
    kept = frozenset(n.name for n in keep)
    cached = model.__dict__.get("_elir_free_after")
    if cached is not None and cached[0] == kept:
        return cached[1]
    where = {n: i for i, n in enumerate(model.node_sort)}
    free = [[] for _ in model.node_sort]
    for n, i in where.items():
        if n.name not in kept:
            free[max([i] + [where[e.sink_node] for e in model.graph.out_edges(n)])].append(n)
    model.__dict__["_elir_free_after"] = (kept, free)
    return free
