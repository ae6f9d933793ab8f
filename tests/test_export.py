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
    fp32, fp16 = ort_session(out / "model.onnx"), ort_session(out / "model_fp16.onnx")
    got = fp32.run(None, {"lq": lq.numpy(), "eps": eps.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-3 * ref.std()
    meta = read_metadata(out / "model.onnx")
    assert meta["task"] == task and int(meta["k_steps"]) == p.k_steps
    assert float(meta["sigma_s"]) == p.sigma_s and meta["image_size"] == "64x64"
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731 (worked out here)
    source = digest(ckpt)
    assert meta["source_sha256"] == source
    manifest = json.loads((out / "manifest.json").read_text())
    # every hash the manifest records is the file's own, computed here from its bytes
    assert manifest["onnx"]["sha256"] == digest(out / "model.onnx")
    assert manifest["weights"]["sha256"] == digest(out / "weights.safetensors")
    assert manifest["fp16"]["sha256"] == digest(out / "model_fp16.onnx") and manifest["source"]["sha256"] == source
    # the fold error is what folding cost on the seeded inputs: 0 with nothing folded, float rounding otherwise
    assert float(meta["fold_error"]) == manifest["fold"]["max_abs_err"] and meta["elir_edge_version"]
    if fmt == "release":
        assert manifest["fold"]["max_abs_err"] == 0
    assert manifest["fold"]["max_abs_err"] < 1e-3 * ref.std()  # the same bound the ONNX is held to
    assert manifest["onnx"]["inputs"] == {"lq": [1, 3, 64, 64], "eps": [1, 16, 8, 8]}
    assert sorted(x.name for x in out.iterdir()) == ["manifest.json", "model.onnx", "model_fp16.onnx",
                                                     "weights.safetensors"]
    half = fp16.run(None, {"lq": lq.numpy(), "eps": eps.numpy()})[0]  # fp32 in and out
    assert half.dtype == np.float32 and 10 * np.log10(1 / np.mean((half - got) ** 2)) > 60
    # the fp16 figures the manifest records are fp16 against fp32 on the export's own seeded inputs
    settings = RunSettings(task, p.k_steps, p.sigma_s, 64, 64, 1)
    seeded = dict(zip(("lq", "eps"), (t.numpy() for t in seeded_inputs(settings, model.arch, 0))))
    a, b = fp16.run(None, seeded)[0], fp32.run(None, seeded)[0]
    assert manifest["fp16"]["max_abs_err"] == float(np.abs(a - b).max())
    assert manifest["fp16"]["psnr_vs_fp32_db"] == pytest.approx(10 * np.log10(1 / np.mean((a - b) ** 2)), abs=1e-3)


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


# --- model/export_folder.py on folders written here by hand (issue 33: mutmut's survivors)


def _folder(tmp_path, manifest=None, report=None, files=(), name="exp"):
    from elir_edge.model import export_folder as ef

    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (d / name).write_bytes(data)
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files}
    m = {"elir_edge_version": "0.1.0", "settings": {"task": "sr", "k_steps": "3", "sigma_s": "0.25", "height": 64,
                                                    "width": "96", "batch": 2},
         "arch": {"latent_channels": 16, "ae_width": 32},
         "onnx": {"file": ef.FLOAT, "noise": "baked", "seed": "7", "sha256": sha.get(ef.FLOAT)},
         "weights": {"sha256": sha.get(ef.WEIGHTS)}, "fp16": None, "gmacs_per_image": 1.5, "deployed_params": 12}
    (d / ef.MANIFEST).write_text(json.dumps(m if manifest is None else manifest))
    if report is not None:
        (d / ef.QUANT_REPORT).write_text(report if isinstance(report, str) else json.dumps(report))
    return d


def test_an_export_folders_fields_are_read_as_numbers(tmp_path):
    from elir_edge.model.export_folder import ExportFolder, is_export_folder

    d = _folder(tmp_path)
    x = ExportFolder(d)
    assert is_export_folder(d) and x.path == d and x / "a.onnx" == d / "a.onnx"
    s = x.settings
    assert (s.task, s.k_steps, s.sigma_s, s.height, s.width, s.batch) == ("sr", 3, 0.25, 64, 96, 2)
    assert isinstance(s.k_steps, int) and isinstance(s.width, int) and isinstance(s.sigma_s, float)
    assert x.arch == {"latent_channels": 16, "ae_width": 32} and x.latent_channels == 16
    assert x.baked_noise is True and x.noise_seed == 7 and x.gmacs_per_image == 1.5 and x.deployed_params == 12
    assert x.quant_report is None and x.recorded_psnr("model_int8.onnx") is None
    m = json.loads((d / "manifest.json").read_text())
    m["onnx"]["noise"] = "input"
    del m["gmacs_per_image"], m["deployed_params"]
    (d / "manifest.json").write_text(json.dumps(m))
    y = ExportFolder(d)
    assert y.baked_noise is False and y.gmacs_per_image is None and y.deployed_params is None


def test_a_folder_that_is_not_an_export_is_refused_in_one_line_naming_the_fix(tmp_path):
    from elir_edge.errors import UserError
    from elir_edge.model.export_folder import ExportFolder, is_export_folder

    assert not is_export_folder(tmp_path)
    with pytest.raises(UserError, match=r"is not an export folder \(no manifest\.json\): run `elir-edge export` first, "
                                        r"or point at a folder it wrote$"):
        ExportFolder(tmp_path)
    d = _folder(tmp_path, manifest={"other": 1})
    assert not is_export_folder(d)
    with pytest.raises(UserError, match=r"was not written by `elir-edge export`: export the model again"):
        ExportFolder(d).manifest
    (d / "manifest.json").write_text("{not json")
    assert not is_export_folder(d)
    with pytest.raises(UserError, match=r"is not readable JSON \(JSONDecodeError\): export the model again"):
        ExportFolder(d).settings
    (d / "manifest.json").write_text("[1]")
    assert not is_export_folder(d)
    d = _folder(tmp_path, manifest={"elir_edge_version": "0", "settings": {"task": "sr"}})
    with pytest.raises(UserError, match=r"lacks 'k_steps' \(damaged, or from another tool\): export the model again"):
        ExportFolder(d).settings
    with pytest.raises(UserError, match="lacks 'arch'"):
        ExportFolder(d).latent_channels
    assert ExportFolder.of(tmp_path / "loose.onnx") is None and ExportFolder.of(d / "model.onnx").path == d


def test_the_recorded_hash_is_the_manifests_for_export_files_and_the_reports_for_int8_files(tmp_path):
    from elir_edge.errors import UserError
    from elir_edge.model import export_folder as ef

    onnx_bytes, w8 = b"float graph", b"int8 graph"
    report = {"files": {ef.INT8: {"sha256": hashlib.sha256(w8).hexdigest()}},
              "probe": {"sha256": "beef"}, "int8_vs_float": {"psnr_db": "41.5"}, "int8_cpu_vs_float": {}}
    d = _folder(tmp_path, report=report, files=[(ef.FLOAT, onnx_bytes), (ef.INT8, w8), (ef.WEIGHTS, b"w")])
    x = ef.ExportFolder(d)
    assert x.expected_sha256(ef.FLOAT) == hashlib.sha256(onnx_bytes).hexdigest()
    assert x.expected_sha256(ef.WEIGHTS) == hashlib.sha256(b"w").hexdigest()
    assert x.expected_sha256(ef.FP16) is None and x.expected_sha256(ef.INT8_CPU) is None
    m = json.loads((d / ef.MANIFEST).read_text())
    (d / ef.MANIFEST).write_text(json.dumps({**m, "fp16": {"file": ef.FP16, "sha256": "f16"}}))
    assert ef.ExportFolder(d).expected_sha256(ef.FP16) == "f16"
    (d / ef.MANIFEST).write_text(json.dumps(m))
    assert x.expected_sha256(ef.INT8) == hashlib.sha256(w8).hexdigest() and x.expected_sha256(ef.PROBE) == "beef"
    assert x.recorded_psnr(ef.INT8) == 41.5 and x.recorded_psnr(ef.INT8_CPU) is None
    assert x.recorded_psnr(ef.INT8_FP16) is None and x.recorded_psnr(ef.FLOAT) is None
    assert x.verified(ef.FLOAT) == d / ef.FLOAT and x.verified(ef.INT8) == d / ef.INT8
    ef.ExportFolder.check_artifact(d / ef.INT8)
    (d / ef.INT8).write_bytes(b"another export's int8 graph")
    y = ef.ExportFolder(d)
    with pytest.raises(UserError, match=r"model_int8\.onnx is not the file its quant_report\.json describes "
                                        r"\(sha256 differs: copied from another export, or changed since\): run "
                                        r"`elir-edge quantize` again"):
        y.verified(ef.INT8)
    with pytest.raises(UserError, match="not the file its quant_report.json describes"):
        ef.ExportFolder.check_artifact(d / ef.INT8)
    (d / ef.FLOAT).write_bytes(b"changed")
    with pytest.raises(UserError, match=r"model\.onnx is not the file its manifest\.json describes .*run "
                                        r"`elir-edge export` again"):
        ef.ExportFolder.check_artifact(d / ef.FLOAT)
    ef.ExportFolder.check_artifact(d / "weights.safetensors.copy")  # not a recorded file: nothing to check
    with pytest.raises(UserError, match=r"model_int8_cpu\.onnx is missing from the export folder: run `elir-edge "
                                        r"quantize` again"):
        y.verified(ef.INT8_CPU)
    with pytest.raises(UserError, match=r"int8_probe\.safetensors is missing .*`elir-edge quantize` again"):
        y.verified(ef.PROBE)
    with pytest.raises(UserError, match=r"model_fp16\.onnx is missing from the export folder: run `elir-edge export`"):
        y.verified(ef.FP16)


def test_a_damaged_quant_report_is_refused_and_stale_files_are_listed(tmp_path):
    from elir_edge.errors import UserError
    from elir_edge.model import export_folder as ef

    d = _folder(tmp_path, report="{cut", files=[(ef.FLOAT, b"f"), (ef.INT8, b"i"), ("model_fp16.rtx.engine", b"e"),
                                                (".hidden", b"h")])
    with pytest.raises(UserError, match=r"quant_report\.json is not readable JSON: run `elir-edge quantize` again"):
        ef.ExportFolder(d).quant_report
    assert ef.ExportFolder(d).stale_files() == ["model_fp16.rtx.engine", "model_int8.onnx", "quant_report.json"]
    d2 = _folder(tmp_path / "two", report={"int8_vs_float": {"psnr_db": "n/a"}})
    x = ef.ExportFolder(d2)
    assert x.recorded_psnr(ef.INT8) is None and x.expected_sha256(ef.INT8) is None


def test_the_newest_export_is_the_last_written_manifest(tmp_path):
    import os

    from elir_edge.errors import UserError
    from elir_edge.model.export_folder import ExportFolder

    for name, t in (("b", 300), ("a", 200), ("c", 100)):
        d = _folder(tmp_path, name=name)
        os.utime(d / "manifest.json", (t, t))
    assert ExportFolder.newest(tmp_path).path == tmp_path / "b"
    with pytest.raises(UserError, match=r"^no export under .*/a/: run `elir-edge export CKPT` first, or pass --model DIR$"):
        ExportFolder.newest(tmp_path / "a")
