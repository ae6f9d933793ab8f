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



def test_run_graph_gives_hq_alone_from_a_graph_with_more_outputs_and_passes_the_thread_limit_on(tmp_path,
                                                                                                 monkeypatch):
    """A graph whose first output is not hq: hq still comes first (and alone, unless asked); the thread count a
    user gives (quantize's --threads) reaches ONNX Runtime, for a file and for a graph in memory alike."""
    import onnx
    from onnx import TensorProto, helper

    import elir_edge.runtime.ort as ort

    model = _graph()
    model.graph.output.insert(0, helper.make_tensor_value_info("mid", TensorProto.FLOAT, [1, 2]))
    path = tmp_path / "two.onnx"
    onnx.save(model, path)
    real, threads = ort.ort_session_from_bytes, []
    monkeypatch.setattr(ort, "ort_session_from_bytes", lambda m, t=None, *a, **k: (threads.append(t), real(m, t, *a, **k))[1])
    feeds = [{"lq": np.array([[1.0, 2.0]], np.float32)}]
    (only,) = run_graph(path, feeds, threads=2)
    assert len(only) == 1 and np.allclose(only[0], [[3.0, 6.0]])
    (both,) = run_graph(model, feeds, ["mid"], threads=3)
    assert np.allclose(both[0], [[3.0, 6.0]]) and np.allclose(both[1], [[2.0, 3.0]])
    assert threads == [2, 3]


# --- runtime/probe.py on a folder and runners made here, whose PSNR on the probe is known by hand


class _Runner:
    """Returns the recorded output plus a known offset: PSNR vs it = 20 log10(1 / offset)."""

    def __init__(self, path, offset, kind="ONNX Runtime CPU", on_gpu=False):
        self.path, self.name, self.offset, self.kind, self.on_gpu = path, path.name, offset, kind, on_gpu
        self.seen = []

    def __call__(self, lq, eps):
        self.seen.append((lq, eps))
        return self.hq + self.offset

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _probed_folder(tmp_path, reference, eps=True):
    import hashlib
    import json

    from elir_edge.model import export_folder as ef
    from elir_edge.runtime.probe import probe_bytes

    rng = np.random.default_rng(0)
    lq, hq = rng.random((1, 3, 8, 8)), rng.random((1, 3, 8, 8)) * 0.5
    e = rng.random((1, 4, 1, 1)) if eps else None
    blob = probe_bytes(lq, e, hq)
    (tmp_path / ef.PROBE).write_bytes(blob)
    (tmp_path / ef.MANIFEST).write_text(json.dumps({"elir_edge_version": "0"}))
    for name in ef.INT8_FILES + (ef.FLOAT,):
        (tmp_path / name).write_bytes(b"graph")
    (tmp_path / ef.QUANT_REPORT).write_text(json.dumps(
        {"probe": {"sha256": hashlib.sha256(blob).hexdigest(), "reference_psnr_db": reference}}))
    return lq.astype(np.float32), None if e is None else e.astype(np.float32), hq.astype(np.float32)


def _runner(tmp_path, name, offset, hq, **k):
    r = _Runner(tmp_path / name, offset, **k)
    r.hq = hq
    return r


def test_a_probe_file_holds_the_input_and_the_float_output_as_float32(tmp_path):
    from elir_edge.runtime.probe import load_probe, probe_bytes

    lq, eps, hq = np.ones((1, 3, 2, 2)), np.zeros((1, 4, 1, 1)), np.full((1, 3, 2, 2), 0.5)
    (tmp_path / "p").write_bytes(probe_bytes(lq, eps, hq))
    got = load_probe(tmp_path / "p")
    assert set(got) == {"lq", "eps", "hq"} and all(v.dtype == np.float32 for v in got.values())
    assert np.array_equal(got["lq"], lq) and np.array_equal(got["eps"], eps) and np.array_equal(got["hq"], hq)
    (tmp_path / "baked").write_bytes(probe_bytes(lq, None, hq))
    assert set(load_probe(tmp_path / "baked")) == {"lq", "hq"}
    (tmp_path / "bad").write_bytes(b"\x00" * 20)
    from elir_edge.errors import UserError

    with pytest.raises(UserError, match=r"bad is not a readable probe \(SafetensorError\): run `elir-edge quantize` again$"):
        load_probe(tmp_path / "bad")


def test_a_runtime_is_held_to_the_files_own_arithmetic_within_3_db(tmp_path):
    """Offsets 0.01 and 0.02: 40.0 and 33.98 dB against a recorded 37.0 dB. Within 3 dB passes, past it fails."""
    from elir_edge.model import export_folder as ef
    from elir_edge.runtime.probe import ProbeResult, probe_runner

    lq, eps, hq = _probed_folder(tmp_path, {ef.INT8_CPU: 37.0, ef.INT8: 20.0})
    good = _runner(tmp_path, ef.INT8_CPU, 0.01, hq)
    r = probe_runner(good)
    assert (r.file, r.runtime, r.reference_db) == (ef.INT8_CPU, "ONNX Runtime CPU", 37.0)
    assert r.measured_db == pytest.approx(40.0) and r.ok
    (seen_lq, seen_eps), = good.seen
    assert np.array_equal(seen_lq, lq) and np.array_equal(seen_eps, eps)
    assert r.to_dict() == {"runtime": "ONNX Runtime CPU", "psnr_db": r.measured_db, "reference_db": 37.0,
                           "computes_right": True}
    bad = probe_runner(_runner(tmp_path, ef.INT8_CPU, 0.02, hq))
    assert bad.measured_db == pytest.approx(20 * np.log10(50)) and not bad.ok
    assert ProbeResult("f", "rt", 34.0, 37.0).ok and not ProbeResult("f", "rt", 33.999, 37.0).ok
    assert bad.describe() == (f"ONNX Runtime CPU computes {ef.INT8_CPU} wrongly on this machine: 34.0 dB against "
                              "the float model on the recorded input, where the file's own arithmetic gives 37.0 dB")


def test_nothing_is_probed_without_a_recorded_reference_or_off_the_cpu(tmp_path):
    from elir_edge.model import export_folder as ef
    from elir_edge.runtime.probe import probe_runner

    *_, hq = _probed_folder(tmp_path, {ef.INT8: 30.0}, eps=False)
    assert probe_runner(_runner(tmp_path, ef.INT8_CPU_W8, 0.5, hq)) is None  # no reference recorded for it
    assert probe_runner(_runner(tmp_path, ef.FLOAT, 0.5, hq)) is None  # not an int8 file
    assert probe_runner(_runner(tmp_path, ef.INT8, 0.5, hq, on_gpu=True)) is None  # GPU runners: not probed
    loose = tmp_path / "loose"
    loose.mkdir()
    assert probe_runner(_runner(loose, ef.INT8, 0.5, hq)) is None  # a file on its own
    r = _runner(tmp_path, ef.INT8, 0.5, hq)
    assert probe_runner(r).measured_db == pytest.approx(20 * np.log10(2)) and r.seen[0][1] is None  # baked eps
    (tmp_path / ef.QUANT_REPORT).write_text('{"files": {}}')  # quantized before probes were recorded
    assert probe_runner(_runner(tmp_path, ef.INT8, 0.5, hq)) is None


def test_a_file_computed_wrongly_is_refused_naming_the_files_this_runtime_computes_right(tmp_path):
    from elir_edge.errors import UserError
    from elir_edge.model import export_folder as ef
    from elir_edge.runtime.probe import WHY, refuse_if_wrong

    *_, hq = _probed_folder(tmp_path, {name: 37.0 for name in ef.INT8_FILES})
    offsets = {ef.INT8: 0.5, ef.INT8_CPU: 0.01, ef.INT8_CPU_W8: 0.5, ef.INT8_CPU_S8: 0.5, ef.INT8_FP16: 0.01}
    reopened = []

    def reopen(path):
        reopened.append(path.name)
        return _runner(tmp_path, path.name, offsets[path.name], hq)

    refuse_if_wrong(_runner(tmp_path, ef.INT8_CPU, 0.01, hq), reopen)  # computes right: nothing to say
    assert reopened == []
    with pytest.raises(UserError) as e:
        refuse_if_wrong(_runner(tmp_path, ef.INT8_CPU_W8, 0.5, hq), reopen)
    assert sorted(reopened) == sorted(set(ef.INT8_FILES) - {ef.INT8_CPU_W8})
    assert str(e.value) == (f"ONNX Runtime CPU computes {ef.INT8_CPU_W8} wrongly on this machine: 6.0 dB against the "
                            "float model on the recorded input, where the file's own arithmetic gives 37.0 dB "
                            f"({WHY}): use {ef.INT8_CPU} or {ef.INT8_FP16}, which ONNX Runtime CPU computes right "
                            "here; nothing was written")
    offsets.update({ef.INT8_CPU: 0.5, ef.INT8_FP16: 0.5})
    (tmp_path / ef.INT8).unlink()
    with pytest.raises(UserError, match=r"\): use the float model\.onnx, or run `elir-edge quantize` again on this "
                                        r"machine; nothing was written$"):
        refuse_if_wrong(_runner(tmp_path, ef.INT8_CPU_W8, 0.5, hq), reopen)


def test_wrong_here_names_each_file_computed_wrongly_and_why(tmp_path):
    from elir_edge.model import export_folder as ef
    from elir_edge.runtime.probe import WHY, probe_runner, wrong_here

    *_, hq = _probed_folder(tmp_path, {ef.INT8_CPU: 37.0, ef.INT8_CPU_W8: 37.0})
    good, bad = _runner(tmp_path, ef.INT8_CPU, 0.01, hq), _runner(tmp_path, ef.INT8_CPU_W8, 0.5, hq)
    assert wrong_here([good, _runner(tmp_path, ef.FLOAT, 0.5, hq)]) is None and wrong_here([]) is None
    assert wrong_here([good, bad]) == f"{probe_runner(bad).describe()} ({WHY})"
    worse = _runner(tmp_path, ef.INT8_CPU, 0.5, hq)
    assert wrong_here([worse, bad]) == f"{probe_runner(worse).describe()}; {probe_runner(bad).describe()} ({WHY})"


def _qdq_conv(scale_type) -> "onnx.ModelProto":
    """lq -> Q/DQ -> conv (DQ'd int8 weights, a float bias of 0.5) -> Q/DQ -> hq, its float parts in
    `scale_type`. x_scale * w_scale = 1e-8: below fp16's least value (6e-8), inside fp32's."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    f = np.float16 if scale_type == T.FLOAT16 else np.float32
    inits = [nh.from_array(np.array(1e-4, f), "s_x"), nh.from_array(np.array(1 / 64, f), "s_y"),
             nh.from_array(np.full(4, 1e-4, f), "s_w"), nh.from_array(np.full(4, 0.5, f), "b"),
             nh.from_array(np.array(0, np.int8), "z"), nh.from_array(np.zeros(4, np.int8), "z_w"),
             nh.from_array(np.full((4, 1, 1, 1), 100, np.int8), "w_q")]
    nodes = [h.make_node("Cast", ["lq"], ["x"], to=scale_type),
             h.make_node("QuantizeLinear", ["x", "s_x", "z"], ["xq"]),
             h.make_node("DequantizeLinear", ["xq", "s_x", "z"], ["xd"]),
             h.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["wd"], axis=0),
             h.make_node("Conv", ["xd", "wd", "b"], ["c"]),
             h.make_node("QuantizeLinear", ["c", "s_y", "z"], ["yq"]),
             h.make_node("DequantizeLinear", ["yq", "s_y", "z"], ["y"]),
             h.make_node("Cast", ["y"], ["hq"], to=T.FLOAT)]
    graph = h.make_graph(nodes, "qdq_conv", [h.make_tensor_value_info("lq", T.FLOAT, [1, 1, 4, 4])],
                         [h.make_tensor_value_info("hq", T.FLOAT, [1, 4, 4, 4])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 19)])


def test_an_fp16_qdq_conv_keeps_its_bias_on_every_onnx_runtime_session_of_ours(tmp_path):
    """ONNX Runtime's WeightBiasQuantization computes the int32 bias's scale in fp16, where 1e-8 is 0: the
    bias saturates and the output clips at -2 instead of 0.5 + 0.0001 (bfr's int8+fp16 file: 6.9 dB vs
    float). Every session the stages open (in memory, from a file, a runner) computes the graph's own
    arithmetic, and fp32 scales keep the transformer (ONNX Runtime needs it to fuse QLinearConv)."""
    from onnx import TensorProto

    from elir_edge.runtime.ort import OrtRunner, miscomputing_transformers, reference_session

    model = _qdq_conv(TensorProto.FLOAT16)
    feed = {"lq": np.full((1, 1, 4, 4), 0.01, np.float32)}
    want = reference_session(model.SerializeToString()).run(["hq"], feed)[0]
    assert np.allclose(want, 0.5, atol=1 / 64)
    path = tmp_path / "qdq_conv_fp16.onnx"
    path.write_bytes(model.SerializeToString())
    for got in (run_graph(model, [feed])[0][0], run_graph(path, [feed])[0][0], OrtRunner(path).session.run(None, feed)[0]):
        np.testing.assert_array_equal(got, want)
    assert miscomputing_transformers(_qdq_conv(TensorProto.FLOAT)) == []
