"""Export is faithful: the ONNX reproduces the unfolded, looped PyTorch model on every preset from both
checkpoint formats, measured here with our own ONNX Runtime run (not the tool's verification figure)
and against the output's own spread."""

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from conftest import SMALL

from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.checkpoint import load_checkpoint
from elir_edge.model.export_folder import ExportFolder
from elir_edge.model.folded import load_folded
from elir_edge.model.noise import baked_noise, seeded_inputs
from elir_edge.model.presets import PRESETS, preset_arch
from elir_edge.model.settings import RunSettings
from elir_edge.model.synthetic import probe_inputs, random_model, save_checkpoint
from elir_edge.runtime.interface import read_metadata
from elir_edge.runtime.ort import ort_session


def _run_onnx(path, feeds):
    return ort_session(path).run(None, feeds)[0]


@pytest.mark.parametrize("fmt", ["release", "training"])
@pytest.mark.parametrize("task", list(PRESETS))
def test_export_every_preset_both_formats(tmp_path, task, fmt):
    p = PRESETS[task]
    model = random_model(preset_arch(task, overparam=fmt == "training"), k=p.k_steps, sigma=p.sigma_s)
    ckpt = save_checkpoint(model, tmp_path / f"{task}.ckpt", fmt)
    out = tmp_path / "out"
    m = export_checkpoint(ckpt, ExportOptions(task=task, image_size=(64, 64), output=out), quiet=True)
    assert (m["fold"]["pairs"] > 0) == (fmt == "training")
    lq, eps = probe_inputs(7)
    with torch.no_grad():
        ref = model(lq, eps).numpy()
    assert ref.std() > 0.1
    got = _run_onnx(out / "model.onnx", {"lq": lq.numpy(), "eps": eps.numpy()})
    assert np.abs(got - ref).max() <= 1e-3 * ref.std()
    meta = read_metadata(out / "model.onnx")
    assert meta["task"] == task and int(meta["k_steps"]) == p.k_steps
    assert float(meta["sigma_s"]) == p.sigma_s and meta["image_size"] == "64x64"
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731 (worked out here)
    assert meta["source_sha256"] == digest(ckpt) == load_checkpoint(ckpt).sha256
    manifest = json.loads((out / "manifest.json").read_text())
    # every hash the manifest records is the file's own, computed here from its bytes
    assert manifest["onnx"]["sha256"] == digest(out / "model.onnx")
    assert manifest["weights"]["sha256"] == digest(out / "weights.safetensors")
    assert manifest["fp16"]["sha256"] == digest(out / "model_fp16.onnx") and manifest["source"]["sha256"] == digest(ckpt)
    # the fold error is what folding cost on the seeded inputs: 0 with nothing folded, float rounding otherwise
    assert float(meta["fold_error"]) == manifest["fold"]["max_abs_err"] and meta["elir_edge_version"]
    if fmt == "release":
        assert manifest["fold"]["max_abs_err"] == 0
    assert manifest["fold"]["max_abs_err"] < 1e-3 * ref.std()  # the same bound the ONNX is held to
    assert manifest["onnx"]["inputs"] == {"lq": [1, 3, 64, 64], "eps": [1, 16, 8, 8]}
    assert sorted(x.name for x in out.iterdir()) == ["manifest.json", "model.onnx", "model_fp16.onnx",
                                                     "weights.safetensors"]
    half = _run_onnx(out / "model_fp16.onnx", {"lq": lq.numpy(), "eps": eps.numpy()})  # fp32 in and out
    assert half.dtype == np.float32 and 10 * np.log10(1 / np.mean((half - got) ** 2)) > 60


def test_weights_shared_across_steps(tmp_path):
    model = random_model(SMALL)  # any architecture: the U-Net's weights are most of the file
    ckpt = save_checkpoint(model, tmp_path / "b.pth", "release")
    sizes = {}
    for k in (1, 4):
        m = export_checkpoint(ckpt, ExportOptions(task="bsr", steps=k, image_size=(64, 64), output=tmp_path / f"k{k}"),
                              quiet=True)
        sizes[k] = m["onnx"]["bytes"]
        graph = onnx.load(str(tmp_path / f"k{k}" / "model.onnx")).graph
        assert not any(n.op_type in ("Loop", "RandomNormal", "RandomNormalLike", "If") for n in graph.node)
    assert sizes[4] < 1.05 * sizes[1]  # not 4x: conv weights are one initializer for all steps


def test_baked_noise_dynamic_and_rebuild(tmp_path, small_ckpt):
    path, model = small_ckpt
    out = tmp_path / "baked"
    m = export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), baked_noise=True, seed=5,
                                              output=out), quiet=True)
    assert list(m["onnx"]["inputs"]) == ["lq"]
    s = RunSettings("denoising", 3, 0.025, 64, 64)
    lq = torch.rand(1, 3, 64, 64)
    model.sigma_s = 0.025  # the fixture's model has sigma 0.1; the denoising preset uses 0.025
    with torch.no_grad():
        expected = model(lq, baked_noise(s, model.arch, 5)).numpy()
    tol = 1e-3 * expected.std()
    assert np.abs(_run_onnx(out / "model.onnx", {"lq": lq.numpy()}) - expected).max() <= tol
    # the folded weights rebuild the model without the original checkpoint
    folded = load_folded(ExportFolder(out))
    with torch.no_grad():
        assert (folded(lq, baked_noise(s, model.arch, 5)) - torch.from_numpy(expected)).abs().max() <= tol

    dyn = tmp_path / "dyn"
    export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), dynamic=True, output=dyn), quiet=True)
    lq, eps = torch.rand(2, 3, 96, 128), torch.randn(2, 16, 12, 16)
    with torch.no_grad():
        expected = model(lq, eps).numpy()
    assert np.abs(_run_onnx(dyn / "model.onnx", {"lq": lq.numpy(), "eps": eps.numpy()}) - expected).max() <= tol


def test_hyper_parameters_in_checkpoint_set_defaults(tmp_path, small_ckpt):
    _, model = small_ckpt
    path = save_checkpoint(model, tmp_path / "h.ckpt", "training",
                           hyper={"task": "denoising", "k_steps": 2, "sigma_s": 0.05, "image_size": 64})
    m = export_checkpoint(path, ExportOptions(output=tmp_path / "h"), quiet=True)
    assert m["settings"] == {"task": "denoising", "k_steps": 2, "sigma_s": 0.05, "height": 64, "width": 64, "batch": 1}


def test_seeded_inputs_are_reproducible():
    s = RunSettings("sr", 3, 0.1, 64, 64, 2)
    a, b = seeded_inputs(s, preset_arch("sr"), 3), seeded_inputs(s, preset_arch("sr"), 3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_an_existing_export_folder_is_updated_and_keeps_other_files(tmp_path, small_ckpt):
    path, _ = small_ckpt
    out = tmp_path / "exp"
    export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), output=out), quiet=True)
    (out / "notes.txt").write_text("mine")
    (out / "model_int8.onnx").write_bytes(b"from an earlier quantize")
    first = (out / "manifest.json").read_text()
    export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), seed=1, output=out), quiet=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "model_int8.onnx").exists()
    assert (out / "manifest.json").read_text() != first  # the export itself was replaced
    user = tmp_path / "mine"
    user.mkdir()
    (user / "photo.jpg").write_bytes(b"x")
    from elir_edge.errors import UserError

    with pytest.raises(UserError, match="not an export folder"):
        export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), output=user), quiet=True)
    assert sorted(p.name for p in user.iterdir()) == ["photo.jpg"]


def test_the_manifest_records_each_files_own_hash(tmp_path, small_ckpt):
    """Each sha256 of the manifest (and the ONNX's source hash) computed here from the files' bytes."""
    path, _ = small_ckpt
    out = tmp_path / "e"
    export_checkpoint(path, ExportOptions(task="denoising", image_size=(64, 64), output=out), quiet=True)
    m = json.loads((out / "manifest.json").read_text())
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "model.onnx", out / "model_fp16.onnx",
                                                                        out / "weights.safetensors", path)}
    assert (m["onnx"]["sha256"], m["fp16"]["sha256"], m["weights"]["sha256"], m["source"]["sha256"]) == \
        (digest["model.onnx"], digest["model_fp16.onnx"], digest["weights.safetensors"], digest[path.name])
    assert read_metadata(out / "model.onnx")["source_sha256"] == digest[path.name]


def _norm_input_peaks_in_torch(model, lq, eps) -> list[float]:
    """max |x| at the input of every GroupNorm call of the PyTorch model, in call order (K steps unrolled)."""
    peaks = []
    hooks = [m.register_forward_hook(lambda mod, i, o: peaks.append(float(i[0].abs().max())))
             for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    try:
        with torch.no_grad():
            model(lq, eps)
    finally:
        for h in hooks:
            h.remove()
    return peaks


def test_fp16_keeps_in_fp32_exactly_the_norms_whose_input_would_overflow(tmp_path):
    """A model whose first U-Net block feeds its second GroupNorm x1000 (conv and time term scaled: the norm
    output is unchanged, its input peaks ~2000). x*x overflows fp16 above sqrt(65504) = 255.9: those norms (one
    per step) must stay fp32 in model_fp16.onnx, every other norm (peaks ~10) must be fp16, and the fp16 graph
    still matches fp32 within a few fp16 rounding units of the output. Caught: the limit ignored (nothing
    kept), the kept list not reaching the converter (the manifest says kept, the graph has it in fp16)."""
    model = random_model(SMALL, k=2, sigma=0.1)
    block = model.fmir.down_blocks[0][0]
    with torch.no_grad():
        for p in (block.block1.block[-1].weight, block.block1.block[-1].bias, block.mlp[1].weight, block.mlp[1].bias):
            p.mul_(1000)
    limit = float(np.sqrt(np.finfo(np.float16).max))
    lq, eps = probe_inputs(0)
    peaks = _norm_input_peaks_in_torch(model, lq, eps)
    assert all(p > 4 * limit or p < limit / 4 for p in peaks)  # far from the limit on any input alike
    over = sum(p > limit for p in peaks)
    assert over == 2 and len(peaks) - over > 0
    out = tmp_path / "e"
    m = export_checkpoint(save_checkpoint(model, tmp_path / "big.pth", "release"),
                          ExportOptions(task="denoising", steps=2, image_size=(64, 64), output=out), quiet=True)
    half = onnx.shape_inference.infer_shapes(onnx.load(str(out / "model_fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in (*half.graph.value_info, *half.graph.input)}
    norms = [n for n in half.graph.node if n.op_type == "InstanceNormalization"]
    kept = sorted(n.name for n in norms if types[n.input[0]] == onnx.TensorProto.FLOAT)
    assert len(norms) == len(peaks) and len(kept) == over and kept == m["fp16"]["norms_kept_fp32"]
    assert sum(types[n.input[0]] == onnx.TensorProto.FLOAT16 for n in norms) == len(peaks) - over
    feeds = {"lq": lq.numpy(), "eps": eps.numpy()}
    ref, got = _run_onnx(out / "model.onnx", feeds), _run_onnx(out / "model_fp16.onnx", feeds)
    u = 2.0 ** -11  # fp16's unit roundoff
    assert np.isfinite(got).all() and np.sqrt(np.mean((got - ref) ** 2)) <= 8 * u * np.sqrt(np.mean(ref ** 2))
