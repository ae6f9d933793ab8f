"""Bugs planted on purpose, to show the suite notices them (tests/test_mutations.py).

Each mutant patches the code under test the way a real bug would change it (the reference model in
`model/arch/` stays right unless the bug is in it) and names the tests that must then fail. The
conftest plants the mutant named by ELIR_EDGE_MUTANT before any test runs.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from onnx import numpy_helper


def _steps_at_t0(mp):
    import elir_edge.model.unroll as unroll

    real = unroll.time_embedding
    mp.setattr(unroll, "time_embedding", lambda t, dim: real(0.0, dim))


def _step_dropped(mp):
    from elir_edge.model.unroll import UnrolledElir

    real = UnrolledElir.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        self.steps = self.steps[:-1]

    mp.setattr(UnrolledElir, "__init__", init)


def _time_scale_x100(mp):
    import math

    import elir_edge.model.arch as arch
    import elir_edge.model.arch.elir as elir
    import elir_edge.model.unroll as unroll

    def wrong(t, dim, device=None):  # the reference's embedding with 100 where the spec says 1000
        half = dim // 2
        freqs = torch.exp(torch.arange(half, device=device).float() * -(math.log(10000) / (half - 1)))
        t = torch.full((1,), t, device=device) if isinstance(t, float) else t.reshape(-1).float()
        arg = 100 * t.unsqueeze(1) * freqs.to(t.device).unsqueeze(0)
        return torch.cat((arg.cos(), arg.sin()), dim=-1)

    for mod in (arch, elir, unroll):
        mp.setattr(mod, "time_embedding", wrong)


def _sigma_ignored(mp):
    from elir_edge.model.unroll import UnrolledElir

    real = UnrolledElir.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        self.sigma_s = 0.0

    mp.setattr(UnrolledElir, "__init__", init)


def _fold_drops_bias(mp):
    import elir_edge.model.fold as fold

    def fold_pair(w1, b1, w2, b2):
        w2m = w2.double()[:, :, 0, 0]
        return torch.einsum("om,mikl->oikl", w2m, w1.double()).float(), (w2m @ b1.double()).float()

    mp.setattr(fold, "fold_pair", fold_pair)


def _qdq_scale_x2(mp):
    import elir_edge.quantize.qdq_rewrite as rw

    real = rw.fold_weight_quantizers

    def doubled(model, weight_bits=8):
        real(model, weight_bits)
        inits = {i.name: i for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "DequantizeLinear" and n.input[0] in inits:
                s = inits[n.input[1]]
                s.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(s) * np.float32(2), s.name))

    mp.setattr(rw, "fold_weight_quantizers", doubled)


def _uint8_truncates(mp):
    import elir_edge.common.images as images

    mp.setattr(images, "to_uint8", lambda chw: (np.clip(chw, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8))


def _bootstrap_80(mp):
    import elir_edge.bench.stats as stats

    real = stats.bootstrap_ci
    mp.setattr(stats, "bootstrap_ci", lambda v, f, n_resamples=2000, level=0.95, seed=0: real(v, f, n_resamples, 0.8, seed))


def _ssim_range_255(mp):
    import elir_edge.common.metrics as metrics
    from torchmetrics.functional.image import structural_similarity_index_measure as tm

    def wrong(a, b):
        ta = torch.as_tensor(np.asarray(a, np.float32)).reshape(1, 3, *np.shape(a)[-2:])
        tb = torch.as_tensor(np.asarray(b, np.float32)).reshape(1, 3, *np.shape(b)[-2:])
        return float(tm(ta, tb, data_range=255.0))

    mp.setattr(metrics, "ssim", wrong)


def _noise_per_tile(mp):
    import elir_edge.restore.tiling as tiling

    real = tiling.restore_tiled

    def per_tile(image, run, tile, overlap, latent_channels, seed=0, batch=1):
        calls = iter(range(10**6))  # every run gets a field of its own, seeded by its order

        def run_own_noise(lq, eps):
            return run(lq, np.stack([tiling.latent_noise(latent_channels, tile, tile, seed + next(calls))
                                     for _ in range(len(lq))]).astype(np.float32))

        return real(image, run_own_noise, tile, overlap, latent_channels, seed, batch)

    mp.setattr(tiling, "restore_tiled", per_tile)


def _macs_transposed_as_conv(mp):
    import contextlib

    from torch import nn

    import elir_edge.model.counts as counts

    @contextlib.contextmanager
    def wrong():
        total = {"macs": 0}

        def hook(mod, inputs, output):
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                total["macs"] += output.numel() * mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            elif isinstance(mod, nn.Linear):
                total["macs"] += output.numel() * mod.in_features

        handle = nn.modules.module.register_module_forward_hook(hook)
        try:
            yield total
        finally:
            handle.remove()

    mp.setattr(counts, "count_macs", wrong)


def _calibration_bgr(mp):
    import elir_edge.quantize.calibration as calibration

    real = calibration.eval_inputs

    def bgr(*a, **k):
        es = real(*a, **k)
        es.lq = np.ascontiguousarray(es.lq[:, ::-1])
        return es

    mp.setattr(calibration, "eval_inputs", bgr)


def _calibration_not_degraded(mp):
    import elir_edge.quantize.calibration as calibration

    real = calibration.eval_inputs
    mp.setattr(calibration, "eval_inputs", lambda images, task, *a: real(images, None, *a))


def _cpu_zero_point_127(mp):
    import elir_edge.quantize.qdq_rewrite as rw
    from onnx import numpy_helper as nh

    real = rw.to_uint8_activations

    def off_by_one(model):
        real(model)
        for init in model.graph.initializer:
            if init.name.endswith("_u8"):
                init.CopyFrom(nh.from_array((nh.to_array(init).astype(np.int16) - 1).astype(np.uint8), init.name))

    mp.setattr(rw, "to_uint8_activations", off_by_one)


def _manifest_hash_reversed(mp):
    import elir_edge.exporter.stage as stage

    real = stage.sha256_file
    mp.setattr(stage, "sha256_file", lambda path: real(path)[::-1])


def _gt_is_the_float_output(mp):
    import elir_edge.bench.quality as quality

    real = quality.paired_image

    def truth_replaced(*a, **k):  # ground truth swapped for the degraded input: figures vs the wrong reference
        lq, eps, _ = real(*a, **k)
        return lq, eps, lq.copy()

    mp.setattr(quality, "paired_image", truth_replaced)


def _train_returns_initial(mp):
    import copy

    import elir_edge.train as train

    real = train.train_elir

    def initial(model, *a, **k):  # a copy taken before training returned instead of the trained weights
        before = copy.deepcopy(model)
        real(model, *a, **k)
        return before.eval()

    mp.setattr(train, "train_elir", initial)


def _train_returns_raw(mp):
    import elir_edge.train as train

    real = train.train_elir
    mp.setattr(train, "train_elir", lambda model, *a, **k: (real(model, *a, **k), model.eval())[1])


def _fp16_limit_ignored(mp):
    import elir_edge.exporter.fp16 as fp16

    mp.setattr(fp16, "NORM_SAFE", float("inf"))


def _fp16_block_list_lost(mp):
    from onnxconverter_common import float16

    real = float16.convert_float_to_float16
    mp.setattr(float16, "convert_float_to_float16", lambda *a, node_block_list=None, **k: real(*a, **k))


# each bug runs only the test that catches it (a whole file runs the tests before that one, hypothesis's and
# scikit-image's imports included: seconds a bug); the unrolled graph's on the smallest preset
UNROLL = "tests/test_unroll.py::test_unrolled_equals_looped[bsr]"
INDEPENDENT = "tests/test_independent.py::test_"
TRAIN_RETURNS = "tests/test_train.py::test_train_elir_returns_the_ema_of_the_trained_weights"
FP16_KEEP = "tests/test_export.py::test_fp16_keeps_in_fp32_exactly_the_norms_whose_input_would_overflow"
CALIBRATION = "tests/test_quantize.py::test_calibration_holds_the_tasks_inputs_and_the_same_eps_as_bench"


def _inspector_without_context(mp):
    from elir_edge.runtime.engine import EngineRunner
    from elir_edge.runtime.layer_precision import read_inspector

    def layers(self):  # the engine alone: a dynamic engine's formats stay unknown
        inspector = self.engine.create_engine_inspector()
        return read_inspector(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    mp.setattr(EngineRunner, "layer_precisions", layers)


def _layers_by_output(mp):
    import elir_edge.runtime.layer_precision as lp

    real = lp.read_inspector

    def by_output(text):  # counts each layer by what it writes, not what its kernel reads
        data = json.loads(text)
        for layer in data.get("Layers", []):
            if isinstance(layer, dict) and layer.get("Outputs"):
                layer["Inputs"] = layer["Outputs"]
        return real(json.dumps(data))

    mp.setattr(lp, "read_inspector", by_output)
    import elir_edge.runtime.engine as engine

    mp.setattr(engine, "read_inspector", by_output)


def _convolutions_by_type_only(mp):
    import elir_edge.runtime.layer_precision as lp

    mp.setattr(lp, "_is_convolution", lambda layer: "onvolution" in f"{layer.get('LayerType')} "
                                                                     f"{layer.get('ParameterType')}")


LAYERS = "tests/test_layer_precision.py"


# Found by mutmut (issue 33, benchmarks/results/mutation_*.json): bug classes no test caught before.
def _describe_unseeded(mp):
    import elir_edge.bench.quality as quality
    import elir_edge.bench.stats as stats

    def unseeded(values, seed=0):  # the intervals drawn from a fresh, unseeded generator: not reproducible
        v = np.asarray(values, np.float64)
        finite = v[np.isfinite(v)] if np.isfinite(v).any() else v
        return {name: {"value": float(fn(finite)), "ci95": stats.bootstrap_ci(finite, fn, seed=None)}
                for name, fn in stats.STATISTICS.items()} | {"n": int(v.size)}

    mp.setattr(stats, "describe", unseeded)
    mp.setattr(quality, "describe", unseeded)


def _floor_on_own_noise(mp):
    import elir_edge.bench.quality as quality

    mp.setattr(quality, "FLOOR_SEED", 0)


def _input_replaced(mp):
    from elir_edge.restore.plan import OutputNames

    real = OutputNames._blocked

    def blocked(self, p, resolved):  # the inputs forgotten: an input elir-edge wrote earlier may be overwritten
        inputs, self.inputs = self.inputs, set()
        try:
            return real(self, p, resolved)
        finally:
            self.inputs = inputs

    mp.setattr(OutputNames, "_blocked", blocked)


def _resume_ignores_settings(mp):
    import elir_edge.restore.image as image
    import elir_edge.restore.plan as plan
    from elir_edge.common.images import tagged, written_by_us

    def done(job, input_sha256, settings):  # any output elir-edge wrote is kept, whatever input or settings made it
        return tagged(plan.png_text(plan.Path(job.target))) and (not job.compare or written_by_us(plan.Path(job.compare)))

    mp.setattr(plan, "already_done", done)
    mp.setattr(image, "already_done", done)


def _int8_hash_unchecked(mp):
    from elir_edge.model import export_folder as ef

    real = ef.ExportFolder.expected_sha256
    mp.setattr(ef.ExportFolder, "expected_sha256", lambda self, name: None if name in ef.INT8_FILES else real(self, name))


PLAN = "tests/test_restore.py::test_"

# name -> (what the bug is, how to plant it, the tests that must turn red)
MUTANTS = {
    "steps_at_t0": ("every Euler step evaluated at t = 0", _steps_at_t0, [UNROLL]),
    "step_dropped": ("the last Euler step dropped", _step_dropped, [UNROLL]),
    "time_scale_x100": ("time embedding scaled x100 instead of x1000", _time_scale_x100,
                        ["tests/test_unroll.py::test_time_embedding_follows_the_spec"]),
    "sigma_ignored": ("sigma_s ignored (no noise added to the coarse estimate)", _sigma_ignored, [UNROLL]),
    "fold_drops_bias": ("folding drops the 1x1 conv's bias", _fold_drops_bias, ["tests/test_fold.py", "tests/test_export.py"]),
    "qdq_scale_x2": ("weight Q/DQ scales off by 2x", _qdq_scale_x2,
                     [INDEPENDENT + "folded_weights_compute_what_onnx_runtimes_own_weight_qdq_computes"]),
    "uint8_truncates": ("restored pixels truncated to uint8, not rounded", _uint8_truncates,
                        [INDEPENDENT + "uint8_round_trip_is_exact_and_rounds_to_nearest"]),
    "bootstrap_80": ("bootstrap intervals at 80 % where 95 % is said", _bootstrap_80,
                     [INDEPENDENT + "bootstrap_interval_covers_the_true_mean_at_its_level"]),
    "ssim_range_255": ("SSIM computed with data range 255 on [0,1] images", _ssim_range_255,
                       [INDEPENDENT + "ssim_agrees_with_scikit_image_at_data_range_one"]),
    "noise_per_tile": ("each tile draws its own noise instead of its slice of one field", _noise_per_tile,
                       [INDEPENDENT + "every_tile_takes_its_slice_of_one_noise_field"]),
    "macs_transposed": ("transposed convs counted like convs on their output", _macs_transposed_as_conv,
                        [INDEPENDENT + "mac_counts_worked_out_by_hand"]),
    "calibration_bgr": ("calibration images in BGR channel order", _calibration_bgr, [CALIBRATION]),
    "calibration_clean": ("calibration images not degraded the task's way", _calibration_not_degraded,
                          [CALIBRATION]),
    "manifest_hash": ("the manifest records a hash that is not the file's", _manifest_hash_reversed,
                      ["tests/test_export.py::test_the_manifest_records_each_files_own_hash"]),
    "ground_truth": ("ground-truth figures computed against another image than the truth", _gt_is_the_float_output,
                     ["tests/test_bench_properties.py::test_an_items_inputs_are_eval_inputs_and_paired_inputs_"
                      "image_i"]),
    "cpu_zero_point": ("the CPU form's activation zero point off by one from the int8 grid", _cpu_zero_point_127,
                       [INDEPENDENT + "cpu_form_activations_are_the_int8_grid_shifted_by_128"]),
    "train_returns_initial": ("train_elir returns the weights from before training", _train_returns_initial,
                              [TRAIN_RETURNS]),
    "train_returns_raw": ("train_elir returns the raw model, not its EMA", _train_returns_raw, [TRAIN_RETURNS]),
    "fp16_limit_ignored": ("fp16 keeps no GroupNorm fp32, whatever its input peak", _fp16_limit_ignored,
                           [FP16_KEEP]),
    "inspector_without_context": ("the engine inspector is not given the context with the bound shapes",
                                  _inspector_without_context, [LAYERS]),
    "layers_by_output": ("engine layers counted by the type they write, not the one their kernel reads",
                         _layers_by_output, [LAYERS]),
    "convolutions_by_type_only": ("Myelin layers (no Cask type, only their ONNX node) never counted as convolutions",
                                  _convolutions_by_type_only, [LAYERS]),
    "fp16_block_list_lost": ("the norms to keep fp32 never reach the fp16 converter", _fp16_block_list_lost,
                             [FP16_KEEP]),
    "describe_unseeded": ("bench's bootstrap intervals drawn unseeded (a rerun gives other intervals)",
                          _describe_unseeded, ["tests/test_bench_properties.py::test_describe_is_its_statistics_on_"
                                               "the_finite_values_with_their_intervals"]),
    "floor_on_own_noise": ("the noise floor run on the image's own eps (a floor of infinite PSNR)", _floor_on_own_noise,
                           ["tests/test_bench_properties.py::test_a_scored_row_compares_each_output_with_the_right_"
                            "reference"]),
    "input_replaced": ("restore in place overwrites an input elir-edge wrote earlier", _input_replaced,
                       [PLAN + "an_output_never_replaces_an_input_or_a_users_file_but_replaces_its_own"]),
    "resume_ignores_settings": ("--resume keeps an output made from another input or other settings",
                                _resume_ignores_settings,
                                [PLAN + "resume_keeps_an_output_only_if_it_is_this_inputs_result_with_these_settings"]),
    "int8_hash_unchecked": ("an int8 file copied from another export is used (its quant-report hash not checked)",
                            _int8_hash_unchecked, ["tests/test_export.py::test_the_recorded_hash_is_the_manifests_for_"
                                                   "export_files_and_the_reports_for_int8_files"]),
}
