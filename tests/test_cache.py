"""elir-edge's cache folder: OpenVINO's compiled models kept per CPU kind, bounded, and never in the way."""

import locale
import os

import numpy as np

from elir_edge.common.cache import CACHE_ENV, cache_dir, prune
from elir_edge.model.synthetic import probe_inputs
from elir_edge.runtime.openvino import OpenVinoRunner


def _blobs(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_openvino_keeps_each_compiled_model_once_and_runs_it_the_same(tiny_quantized, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    lq, eps = (x.numpy() for x in probe_inputs(1, 64))
    path = tiny_quantized[0] / "model_int8_cpu.onnx"
    first = OpenVinoRunner(path)(lq, eps)
    kept = _blobs(tmp_path / "cache")
    assert len(kept) == 1 and kept[0].parent.parent == tmp_path / "cache" / "openvino"
    again = OpenVinoRunner(path)(lq, eps)  # loaded from the cache: no second entry, the same output
    assert _blobs(tmp_path / "cache") == kept and np.array_equal(again, first)

    monkeypatch.setenv(CACHE_ENV, "off")
    assert np.array_equal(OpenVinoRunner(path)(lq, eps), first) and cache_dir("openvino") is None
    (tmp_path / "a file").write_text("")  # a cache folder that cannot be made: no cache, the model still runs
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a file"))
    assert cache_dir("openvino") is None and np.array_equal(OpenVinoRunner(path)(lq, eps), first)


def test_the_locale_openvino_leaves_behind_is_put_back(tiny_quantized, monkeypatch):
    """Two compiles writing cache entries at once can leave the process in the C locale (OpenVINO sets it while
    it writes, then restores what it found): here a compile that always leaves it so. Python's text files would
    be ASCII after."""
    import openvino as ov

    real = ov.Core.compile_model

    def leaves_c_locale(self, *a, **kw):
        compiled = real(self, *a, **kw)
        locale.setlocale(locale.LC_ALL, "C")
        return compiled

    found = locale.setlocale(locale.LC_ALL)
    monkeypatch.setattr(ov.Core, "compile_model", leaves_c_locale)
    try:
        before = locale.setlocale(locale.LC_ALL, "C.UTF-8")  # a known locale that is not C, whatever ran before
        OpenVinoRunner(tiny_quantized[0] / "model_int8_cpu.onnx")
        assert locale.setlocale(locale.LC_ALL) == before and locale.getencoding() == "UTF-8"
    finally:
        locale.setlocale(locale.LC_ALL, found)


def test_the_default_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("openvino") == tmp_path / "elir-edge" / "openvino" and (tmp_path / "elir-edge").is_dir()


def test_prune_deletes_the_oldest_files_past_the_cap(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (1e9 - age * 1000, 1e9 - age * 1000))
    (tmp_path / "sub").mkdir()  # not an entry: never counted or removed
    prune(tmp_path, cap=250)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle", "newest", "sub"]
    prune(tmp_path, cap=200)  # at the cap: nothing more goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle", "newest", "sub"]
    prune(tmp_path, cap=0)
    assert [p.name for p in tmp_path.iterdir()] == ["sub"]
