"""elir-edge's cache folder: OpenVINO's compiled models kept per CPU kind, bounded, and never in the way."""

import locale
import os
import threading

import numpy as np

from elir_edge.common.cache import CACHE_ENV, cache_dir, prune
from elir_edge.model.synthetic import probe_inputs
from elir_edge.runtime.openvino import OpenVinoRunner


def _blobs(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_openvino_keeps_each_compiled_model_once_and_runs_it_the_same(tiny_quantized, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    lq, eps = (x.numpy() for x in probe_inputs(1, 64))
    path = tiny_quantized[0] / "model_int8_cpu.onnx"
    first = OpenVinoRunner(path)
    kept = _blobs(tmp_path / "cache")
    assert len(kept) == 1 and kept[0].parent.parent == tmp_path / "cache" / "openvino"
    assert not first.compiled.get_property("LOADED_FROM_CACHE")
    again = OpenVinoRunner(path)  # loaded from the cache: no second entry, the same output
    assert again.compiled.get_property("LOADED_FROM_CACHE") and _blobs(tmp_path / "cache") == kept
    assert np.array_equal(again(lq, eps), first(lq, eps))

    monkeypatch.setenv(CACHE_ENV, "off")
    assert np.array_equal(OpenVinoRunner(path)(lq, eps), first(lq, eps)) and cache_dir("openvino") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # "off" is no folder
    (tmp_path / "a file").write_text("")  # a cache folder that cannot be made: no cache, the model still runs
    monkeypatch.setenv(CACHE_ENV, "a file")
    assert cache_dir("openvino") is None and np.array_equal(OpenVinoRunner(path)(lq, eps), first(lq, eps))


def test_the_locale_openvino_leaves_behind_is_put_back(tiny_quantized, monkeypatch):
    """OpenVINO sets the C locale while it writes a cache entry and then restores the locale it found. Two
    compiles at once: the second finds the C locale the first set and, restoring last, leaves it for good (here
    in that order every time). Python's text files would be ASCII after."""
    import openvino as ov

    real, steps = ov.Core.compile_model, [threading.Event() for _ in range(3)]

    def like_openvino(self, *a, **kw):
        compiled = real(self, *a, **kw)
        first = threading.current_thread().name == "first"
        if not first:
            steps[0].wait(60)  # the first has set C
        found = locale.setlocale(locale.LC_ALL)
        locale.setlocale(locale.LC_ALL, "C")
        (steps[0] if first else steps[1]).set()
        (steps[1] if first else steps[2]).wait(60)  # the first restores once the second has found C; then the second
        locale.setlocale(locale.LC_ALL, found)
        if first:
            steps[2].set()
        return compiled

    found = locale.setlocale(locale.LC_ALL)
    monkeypatch.setattr(ov.Core, "compile_model", like_openvino)
    try:
        before = locale.setlocale(locale.LC_ALL, "C.UTF-8")  # a known locale that is not C, whatever ran before
        path = tiny_quantized[0] / "model_int8_cpu.onnx"
        threads = [threading.Thread(target=OpenVinoRunner, args=(path,), name=n) for n in ("first", "second")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all(e.is_set() for e in steps)  # the two compiles overlapped as described
        assert locale.setlocale(locale.LC_ALL) == before and locale.getencoding() == "UTF-8"
    finally:
        locale.setlocale(locale.LC_ALL, found)


def test_the_default_folder_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("openvino") == tmp_path / "elir-edge" / "openvino" and (tmp_path / "elir-edge").is_dir()


def test_prune_deletes_the_oldest_entries_past_the_cap_in_every_sub_folder(tmp_path):
    (tmp_path / "other cpu").mkdir()
    for age, name in enumerate(["newest.blob", "middle.blob", "other cpu/oldest.blob"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (1e9 - age * 1000, 1e9 - age * 1000))
    (tmp_path / "users notes.txt").write_bytes(b"x" * 1000)  # not an entry: never counted, never deleted
    os.utime(tmp_path / "users notes.txt", (1, 1))
    prune(tmp_path, "*.blob", cap=250)
    assert [p.name for p in _blobs(tmp_path)] == ["middle.blob", "newest.blob", "users notes.txt"]
    prune(tmp_path, "*.blob", cap=200)  # at the cap: nothing more goes
    assert [p.name for p in _blobs(tmp_path)] == ["middle.blob", "newest.blob", "users notes.txt"]
    prune(tmp_path, "*.blob", cap=0)
    assert [p.name for p in _blobs(tmp_path)] == ["users notes.txt"] and (tmp_path / "other cpu").is_dir()
    prune(tmp_path / "gone", "*.blob", cap=0)  # a folder removed meanwhile: nothing to do, no error
