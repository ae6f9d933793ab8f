"""Feeding static batches and measuring agreement, against expectations from outside the code: a second path
(one batch size vs another), properties (hypothesis: PSNR and max error symmetric, zero/infinite only on
equal arrays), scikit-image computing the same PSNR, and graphs built here whose outputs are known.
Written for the mutants mutmut left alive (issue 33, benchmarks/results/mutation_batching.json,
mutation_compare.json)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elir_edge.runtime.batching import in_batches
from elir_edge.runtime.compare import Agreement, agreement, per_image, run_graph

FAST = settings(max_examples=25, deadline=None)


def _per_item(lq, eps):  # a graph that treats each item on its own, eps included
    return lq * 2 + (0 if eps is None else eps.mean(axis=(1, 2, 3), keepdims=True))


@FAST
@given(st.integers(1, 11), st.integers(1, 5), st.booleans())
def test_any_static_batch_gives_what_one_batch_of_everything_gives(n, batch, with_eps):
    """Chunks of exactly `batch` items (the last padded with copies of the last item), the padding trimmed:
    the result is the same whatever the graph's batch."""
    rng = np.random.default_rng(n * 10 + batch)
    lq = rng.random((n, 3, 2, 2)).astype(np.float32)
    eps = rng.random((n, 4, 1, 1)).astype(np.float32) if with_eps else None
    calls = []

    def run_batch(x, e):
        calls.append((x.copy(), None if e is None else e.copy()))
        return _per_item(x, e)

    out = in_batches(run_batch, batch, lq, eps)
    assert out.shape == (n, 3, 2, 2) and np.allclose(out, _per_item(lq, eps))
    assert len(calls) == math.ceil(n / batch) and all(len(x) == batch for x, _ in calls)
    fed = np.concatenate([x for x, _ in calls])
    assert np.array_equal(fed[:n], lq) and (fed[n:] == lq[-1]).all()  # the padding repeats the last item
    if with_eps:
        fed_eps = np.concatenate([e for _, e in calls])
        assert np.array_equal(fed_eps[:n], eps) and (fed_eps[n:] == eps[-1]).all()
    else:
        assert all(e is None for _, e in calls)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 2 * 3 * 12 * 12 - 1), st.sampled_from([0.0, 1e-3, -0.2, 0.7]))
def test_agreement_is_symmetric_and_perfect_only_on_equal_outputs(seed, where, delta):
    """One value of an output changed by delta: the error is |delta| and the PSNR finite exactly when delta is
    not 0, the same whichever side is the reference."""
    a = np.random.default_rng(seed).random((2, 3, 12, 12)).astype(np.float32) * 0.2 + 0.4
    b = a.copy()
    b.flat[where] += np.float32(delta)
    ab, ba = agreement([a], [b], with_ssim=True), agreement([b], [a], with_ssim=True)
    assert ab.max_abs_err == ba.max_abs_err == pytest.approx(abs(delta), abs=1e-6)
    assert ab.psnr_db == ba.psnr_db and ab.ssim == pytest.approx(ba.ssim, abs=1e-6)
    assert (ab.psnr_db == math.inf) == (delta == 0)
    assert ab.ssim == pytest.approx(1.0, abs=1e-6) if abs(delta) < 0.01 else ab.ssim < 0.9999  # float32 SSIM's grain


def test_agreement_by_hand_and_by_scikit_image():
    """Largest difference over every output; PSNR the mean over outputs of each one's PSNR (scikit-image's);
    SSIM the mean over every image of every output."""
    from skimage.metrics import peak_signal_noise_ratio

    from elir_edge.common.metrics import ssim

    rng = np.random.default_rng(0)
    refs = [rng.random((2, 3, 16, 16)).astype(np.float32) for _ in range(2)]
    outs = [np.clip(refs[0] + 0.01, 0, 1), refs[1].copy()]
    outs[1][1, 2, 3, 4] += 0.25
    got = agreement(outs, refs, with_ssim=True)
    assert got.max_abs_err == pytest.approx(0.25, rel=1e-6)
    want = np.mean([peak_signal_noise_ratio(r.astype(np.float64), o.astype(np.float64), data_range=1)
                    for o, r in zip(outs, refs)])
    assert got.psnr_db == pytest.approx(want, rel=1e-9)
    ssims = [ssim(o[i], r[i]) for o, r in zip(outs, refs) for i in range(2)]
    assert got.ssim == pytest.approx(np.mean(ssims), rel=1e-9) and min(ssims) < got.ssim < max(ssims)
    plain = agreement(outs, refs)
    assert plain.ssim is None and plain.psnr_db == got.psnr_db
    assert plain.to_dict() == {"max_abs_err": plain.max_abs_err, "psnr_db": plain.psnr_db}
    assert got.to_dict() == {"max_abs_err": got.max_abs_err, "psnr_db": got.psnr_db, "ssim": got.ssim}
    assert Agreement(0.5, 20.0, 0.0).to_dict()["ssim"] == 0.0  # an SSIM of 0 is a figure, not "none"


def test_per_image_is_each_images_own_psnr_and_ssim():
    from skimage.metrics import peak_signal_noise_ratio

    from elir_edge.common.metrics import ssim

    rng = np.random.default_rng(1)
    t = rng.random((3, 3, 16, 16)).astype(np.float32)
    o = np.clip(t + rng.normal(0, [[[[0.01]]], [[[0.05]]], [[[0.1]]]], t.shape), 0, 1).astype(np.float32)
    q = per_image(o, t)
    assert q["psnr"] == pytest.approx([peak_signal_noise_ratio(t[i].astype(np.float64), o[i].astype(np.float64),
                                                               data_range=1) for i in range(3)])
    assert q["psnr"][0] > q["psnr"][1] > q["psnr"][2]
    assert q["ssim"] == pytest.approx([ssim(o[i], t[i]) for i in range(3)]) and q["ssim"][0] > q["ssim"][2]
    assert set(q) == {"psnr", "ssim"}


def _graph():
    """hq = lq * 3 with the intermediate `mid` = lq + 1 and hq = (mid - 1) * 3: outputs known by hand."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Add", ["lq", "one"], ["mid"]), helper.make_node("Sub", ["mid", "one"], ["back"]),
             helper.make_node("Mul", ["back", "three"], ["hq"])]
    inits = [numpy_helper.from_array(np.array(1, np.float32), "one"),
             numpy_helper.from_array(np.array(3, np.float32), "three")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("lq", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("hq", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_run_graph_returns_hq_then_the_asked_intermediates_for_each_feed(tmp_path):
    import onnx

    model = _graph()
    feeds = [{"lq": np.array([[1.0, 2.0]], np.float32)}, {"lq": np.array([[-1.0, 0.5]], np.float32)}]
    got = run_graph(model, feeds, ["mid"], threads=1)
    assert len(got) == 2 and all(len(outs) == 2 for outs in got)
    for (hq, mid), f in zip(got, feeds):
        assert np.allclose(hq, f["lq"] * 3) and np.allclose(mid, f["lq"] + 1)
    path = tmp_path / "g.onnx"
    onnx.save(model, path)
    (only,) = run_graph(path, feeds[:1])
    assert len(only) == 1 and np.allclose(only[0], [[3.0, 6.0]])
    assert len(run_graph(model, feeds[:1])[0]) == 1
