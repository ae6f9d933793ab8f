"""Expectations worked out another way than the code under test: by hand, by a second library, by
simulation. Each test names the bug class it was watched catching (planted once, red, then removed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elir_edge.bench.stats import bootstrap_ci
from elir_edge.common.images import to_chw, to_uint8
from elir_edge.common.metrics import ssim
from elir_edge.model.counts import count_macs
from elir_edge.model.noise import ALIGN, latent_noise
from elir_edge.restore.tiling import restore_tiled


def test_uint8_round_trip_is_exact_and_rounds_to_nearest():
    """Caught: truncation instead of rounding in to_uint8 (restored pixels one level darker)."""
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_uint8(to_chw(levels)), levels)
    k = np.arange(255, dtype=np.float64)
    below, above = (k + 0.49) / 255, (k + 0.51) / 255
    assert np.array_equal(to_uint8(np.stack([below] * 3)[:, None, :]).ravel()[::3], k.astype(np.uint8))
    assert np.array_equal(to_uint8(np.stack([above] * 3)[:, None, :]).ravel()[::3], (k + 1).astype(np.uint8))
    assert to_uint8(np.full((3, 1, 1), 2.0)).max() == 255 and to_uint8(np.full((3, 1, 1), -1.0)).min() == 0


def test_bootstrap_interval_covers_the_true_mean_at_its_level():
    """Coverage by simulation: 95 % intervals of the mean of 40 normal draws hold the true mean about 95 %
    of the time (percentile bootstrap runs a little under at this size). Caught: an 80 % interval."""
    rng = np.random.default_rng(1)
    trials = 300
    hits = sum(lo <= 0.0 <= hi for lo, hi in (bootstrap_ci(rng.standard_normal(40), np.mean, n_resamples=600,
                                                           seed=t) for t in range(trials)))
    # binomial spread at p = 0.95 over 300 trials: sd 1.3 %; the percentile bootstrap's own shortfall ~1-2 %
    assert 0.89 <= hits / trials <= 0.99, hits / trials


def test_ssim_agrees_with_scikit_image_at_data_range_one():
    """Against scikit-image's Gaussian SSIM map (sigma 1.5, population covariance, data range 1), averaged over
    the whole map as torchmetrics does (scikit-image's own mean drops the borders). Caught: a data range of
    255 (every pair of [0,1] images then scores about 1)."""
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = np.kron(rng.random((3, 8, 8)), np.ones((1, 8, 8))).astype(np.float32)
    for noise in (0.02, 0.1, 0.3):
        b = np.clip(a + rng.normal(0, noise, a.shape), 0, 1).astype(np.float32)
        _, full = metrics.structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=1.0, full=True)
        assert ssim(a, b) == pytest.approx(float(full.mean()), abs=1e-3), noise
    assert ssim(a, np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)) < 0.6


def test_every_tile_takes_its_slice_of_one_noise_field():
    """A runner whose output is its eps (upsampled x8): the blended result must be the one seeded field of
    the padded image, whatever the tiles. Caught: noise seeded per tile."""
    def echo_eps(lq, eps):
        up = eps[:, :1].repeat(ALIGN, axis=2).repeat(ALIGN, axis=3)
        return np.concatenate([up] * 3, axis=1)

    image = np.random.default_rng(0).random((3, 100, 140)).astype(np.float32)
    out = restore_tiled(image, echo_eps, tile=64, overlap=16, latent_channels=16, seed=5, batch=2)
    field = latent_noise(16, 104, 144, 5)[0].repeat(ALIGN, axis=0).repeat(ALIGN, axis=1)[:100, :140]
    assert np.allclose(out, field[None].repeat(3, axis=0), atol=1e-5)


def test_mac_counts_worked_out_by_hand():
    """Conv2d: Cout*H_out*W_out*Cin*k*k; ConvTranspose2d (stride 2): Cin*H_in*W_in*Cout*k*k. Caught: the
    transposed conv counted like a conv on its output."""
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    up = torch.nn.ConvTranspose2d(6, 5, 2, stride=2)
    with torch.no_grad(), count_macs() as macs:
        up(conv(torch.zeros(1, 4, 10, 12)))
    assert macs["macs"] == 6 * 10 * 12 * 4 * 3 * 3 + 6 * 10 * 12 * 5 * 2 * 2


def test_cpu_form_activations_are_the_int8_grid_shifted_by_128():
    """A hand-built int8 Q/DQ conv rewritten to the CPU form: every activation zero point becomes exactly
    zp + 128 in uint8 (q_u8 = q_s8 + 128, the same grid), and the graph computes what it did. Caught: 127."""
    import onnxruntime as ort
    from onnx import numpy_helper
    from test_qdq_rules import _graph

    from elir_edge.quantize.qdq_rewrite import to_uint8_activations

    model = _graph(act_zp=np.int8(-3))
    x = {"x": np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)}
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    to_uint8_activations(model)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
           and n.input[0] not in inits]
    assert zps and all(z.dtype == np.uint8 and int(z) == 125 for z in zps)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
    assert np.array_equal(before, after)


def _float_weight_qdq_conv(w: np.ndarray, scale: np.ndarray):
    """x -> Conv whose weight is a float initializer through per-channel QuantizeLinear/DequantizeLinear, the form
    MCT exports before the weights are folded to int8."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "w_s"),
             numpy_helper.from_array(np.zeros(len(scale), np.int8), "w_zp")]
    nodes = [helper.make_node("QuantizeLinear", ["w", "w_s", "w_zp"], ["w_q"], axis=0),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w_d"], axis=0),
             helper.make_node("Conv", ["x", "w_d"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_folded_weights_compute_what_onnx_runtimes_own_weight_qdq_computes():
    """Folding a weight's QuantizeLinear into an int8 initializer leaves the graph computing exactly what ONNX
    Runtime computes with its own QuantizeLinear; the 7-bit fold equals the 8-bit one at doubled scales, its
    values in [-64, 63]. Caught: the dequantizers' scales off by 2x."""
    import onnxruntime as ort
    from onnx import numpy_helper

    from elir_edge.quantize.qdq_rewrite import fold_weight_quantizers

    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    scale = (np.abs(w).reshape(6, -1).max(1) / 120).astype(np.float32)  # no value at the 7-bit grid's edge
    x = {"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)}

    def run(model):
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]

    want = run(_float_weight_qdq_conv(w, scale))
    for bits, widen in ((8, 1), (7, 2)):
        model = _float_weight_qdq_conv(w, scale)
        fold_weight_quantizers(model, bits)
        assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
        q = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w_q"))
        assert q.dtype == np.int8 and q.min() >= -128 // widen and q.max() <= 127 // widen
        ref = want if bits == 8 else run(_float_weight_qdq_conv(w, scale * np.float32(widen)))
        assert np.array_equal(run(model), ref), bits
