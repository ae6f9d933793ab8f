"""Tiling math with exact fake runners, and `elir-edge restore` end to end on the demo artifact."""

import numpy as np
import pytest
from PIL import Image

from elir_edge.cli import main
from elir_edge.restore.tiling import origins, restore_tiled, restore_whole


def identity(lq, eps):
    return lq


def position_dependent(lq, eps):
    """Output depends on the tile's content only (a pointwise function): tiling must not show."""
    return np.sqrt(lq) * 0.5 + 0.25


def test_origins_cover_the_image_aligned_to_8():
    for length, tile, overlap in [(256, 256, 32), (300, 256, 32), (1000, 256, 48), (100, 256, 16)]:
        starts = origins(length, tile, overlap)
        assert all(s % 8 == 0 for s in starts)
        assert starts[0] == 0 and starts[-1] + tile >= length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_single_tile_reproduces_the_whole_image_result():
    rng = np.random.default_rng(0)
    img = rng.random((3, 64, 64), dtype=np.float32)

    def model(lq, eps):  # depends on eps too: the tile must get the same noise as the whole run
        return lq * 0.9 + eps.repeat(8, axis=2).repeat(8, axis=3)[:, :3] * 0.01

    whole = restore_whole(img, model, 16, seed=3)
    tiled = restore_tiled(img, model, tile=64, overlap=16, latent_channels=16, seed=3)
    assert np.array_equal(whole, tiled)


@pytest.mark.parametrize("h, w", [(256, 256), (300, 413), (97, 1000), (40, 40)])
def test_no_seams_on_constant_and_gradient(h, w):
    const = np.full((3, h, w), 0.37, np.float32)
    out = restore_tiled(const, identity, tile=64, overlap=16, latent_channels=16, batch=3)
    assert out.shape == (3, h, w) and np.abs(out - 0.37).max() < 1e-6
    yy, xx = np.mgrid[0:h, 0:w]
    grad = np.stack([yy / h, xx / w, (yy + xx) / (h + w)]).astype(np.float32)
    out = restore_tiled(grad, position_dependent, tile=64, overlap=16, latent_channels=16)
    assert np.abs(out - (np.sqrt(grad) * 0.5 + 0.25)).max() < 1e-5  # borders and odd sizes included


def test_blending_is_smooth_where_tiles_disagree():
    calls = iter(range(1000))

    def disagreeing(lq, eps):  # each tile returns its own constant: the seam must be a ramp, not a step
        return np.stack([np.full_like(t, next(calls) % 2) for t in lq])

    out = restore_tiled(np.zeros((3, 64, 200), np.float32), disagreeing, tile=64, overlap=32, latent_channels=16)
    steps = np.abs(np.diff(out[0, 32], axis=0))
    assert steps.max() <= 1 / 32 + 1e-6


def test_restore_cli(demo_folder, tmp_path, capsys):
    from elir_edge.demo import HELDOUT_DIR

    folder = demo_folder
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(HELDOUT_DIR / "chelsea_0.png").resize((300, 220)).convert("L").save(inputs / "gray.jpg")
    Image.open(HELDOUT_DIR / "astronaut_0.png").convert("RGBA").save(inputs / "rgba.png")
    (inputs / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["restore", "-q", "--engine", str(folder / "model.onnx"), str(inputs), "-o", str(out),
                 "--tile", "256", "--compare"])
    text = capsys.readouterr()
    assert code == 0
    assert "restored 2 of 3" in text.out and "broken.png" in text.err
    assert Image.open(out / "gray.png").size == (300, 220)
    assert (out / "rgba_compare.png").is_file()
    code = main(["restore", "-q", "--engine", str(folder / "model.onnx"), str(inputs), "-o", str(out), "--tile", "128"])
    assert code == 2 and "differs from the graph's fixed input" in capsys.readouterr().err
    code = main(["restore", "-q", "--engine", str(tmp_path / "m.trt"), str(inputs), "-o", str(out)])
    assert code == 2 and "no such artifact" in capsys.readouterr().err


def test_in_batches_pads_a_static_batch_and_trims():
    from elir_edge.runtime.batching import in_batches

    seen = []

    def run_batch(lq, eps):  # a static-batch-3 graph: refuses anything else
        assert len(lq) == 3 and len(eps) == 3
        seen.append(lq[:, 0, 0, 0].copy())
        return lq * 2

    lq = np.arange(7, dtype=np.float32).reshape(7, 1, 1, 1) * np.ones((1, 3, 2, 2), np.float32)
    out = in_batches(run_batch, 3, lq, lq[:, :1])
    assert np.array_equal(out, lq * 2)  # order kept, padding trimmed
    assert [list(s) for s in seen] == [[0, 1, 2], [3, 4, 5], [6, 6, 6]]  # the last item repeats


def test_restore_improves_a_noisy_photograph(demo_folder, tmp_path, capsys):
    """Image content: the demo model restores a denoising input towards the clean photograph."""
    from elir_edge.common.degrade import degrade
    from elir_edge.demo import HELDOUT_DIR

    folder = demo_folder
    clean = np.asarray(Image.open(HELDOUT_DIR / "astronaut_2.png").convert("RGB"))
    noisy = degrade("denoising", clean, 11)
    (tmp_path / "in").mkdir()
    Image.fromarray(noisy).save(tmp_path / "in" / "noisy.png")
    assert main(["restore", "-q", "--engine", str(folder / "model.onnx"), str(tmp_path / "in"), "-o",
                 str(tmp_path / "out")]) == 0
    restored = np.asarray(Image.open(tmp_path / "out" / "noisy.png"))

    def psnr(a):
        return 10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - clean) ** 2))

    assert psnr(restored) > psnr(noisy) + 5


@pytest.mark.parametrize("task, factor", [("sr", 8), ("bsr", 4)])
def test_super_resolution_inputs_are_upscaled_first(tmp_path, task, factor, capsys):
    """sr (x8) and bsr (x4): a small image comes back `factor` times larger with --tile (bsr tiles by
    default); without tiles an sr input is resized to the graph's input."""
    from elir_edge.model.presets import PRESETS, preset_arch
    from elir_edge.model.synthetic import random_model, save_checkpoint

    p = PRESETS[task]
    small = preset_arch(task).__class__(**{**preset_arch(task).to_dict(), "ch_mult": (1, 2, 1, 2), "ae_width": 32,
                                           "unet_hid": 32, "rrdb_hid": 16, "n_rrdb": 1})
    ckpt = save_checkpoint(random_model(small, k=1, sigma=p.sigma_s), tmp_path / "m.pth", "release")
    assert main(["export", "-q", str(ckpt), "--task", task, "--steps", "1", "--image-size", "64",
                 "-o", str(tmp_path / "exp")]) == 0
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(tmp_path / "in" / "s.png")
    args = ["restore", "-q", "--engine", str(tmp_path / "exp" / "model.onnx"), str(tmp_path / "in"), "-o",
            str(tmp_path / "o")]
    assert main(args + ["--tile", "64"]) == 0
    assert Image.open(tmp_path / "o" / "s.png").size == (24 * factor, 20 * factor)
    if task == "sr":
        assert main(args + ["-o", str(tmp_path / "o2")]) == 0
        assert Image.open(tmp_path / "o2" / "s.png").size == (64, 64)


def test_a_decompression_bomb_is_skipped_and_the_rest_restored(demo_folder, tmp_path, capsys):
    """A PNG whose header claims ~400 megapixels: Pillow refuses it on purpose; restore skips it in one
    line, restores the other image, and counts both."""
    import struct
    import zlib

    from elir_edge.demo import HELDOUT_DIR

    folder = demo_folder
    (tmp_path / "in").mkdir()
    Image.open(HELDOUT_DIR / "chelsea_0.png").save(tmp_path / "in" / "good.png")

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # 20000 x 20000 RGB
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + \
        chunk(b"IEND", b"")
    (tmp_path / "in" / "bomb.png").write_bytes(bomb)
    code = main(["restore", "-q", "--engine", str(folder / "model.onnx"), str(tmp_path / "in"), "-o",
                 str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0 and "restored 1 of 2" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bomb.png" in lines[0] and "DecompressionBomb" in lines[0]
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bomb.png").exists()


def test_restore_runs_on_openvino(demo_folder, tmp_path, capsys):
    pytest.importorskip("openvino")
    from elir_edge.demo import HELDOUT_DIR

    folder = demo_folder
    (tmp_path / "in").mkdir()
    Image.open(HELDOUT_DIR / "chelsea_0.png").save(tmp_path / "in" / "a.png")
    for runtime in ("ort", "openvino"):
        assert main(["restore", "-q", "--engine", str(folder / "model.onnx"), str(tmp_path / "in"), "-o",
                     str(tmp_path / runtime), "--runtime", runtime]) == 0
    a, b = (np.asarray(Image.open(tmp_path / r / "a.png"), np.float64) for r in ("ort", "openvino"))
    assert np.abs(a - b).max() <= 2  # the same restoration, up to rounding


def test_the_steady_rate_leaves_out_the_rows_that_came_with_the_first():
    """Worked by hand: one process, a row every 0.25 s -> 4 img/s; Ray, blocks of 4 rows every second, the first
    at 10 s (start-up) -> 8 rows in the 2 s after the first block: 4 img/s, not 11/2."""
    from array import array

    from elir_edge.restore.stage import _steady

    assert _steady(array("d", [1 + 0.25 * i for i in range(9)])) == pytest.approx(4.0)
    assert _steady(array("d", [10 + b + 1e-4 * i for b in range(3) for i in range(4)])) == pytest.approx(8 / (2 + 3e-4))
    assert _steady(array("d", [1.0, 1.0])) is None and _steady(array("d")) is None


# --- restore/plan.py: the plan worked out by hand on files made here (issue 33: mutmut's survivors)


def _png(path, level=10, ours=False):
    from elir_edge.common.images import save_png

    img = np.full((8, 8, 3), level, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(img, path) if ours else Image.fromarray(img).save(path)
    return path


def test_each_folders_tree_is_mirrored_one_shard_per_output_folder(tmp_path):
    """Files named one by one go to the output folder, a folder's tree is mirrored under it (the output folder
    inside an input tree is not walked); each output folder is one shard, planned on its own: its files as
    given, then its images by name, never a name another shard could take."""
    from elir_edge.errors import UserError
    from pathlib import Path

    from elir_edge.restore.plan import SHARD_SPAN, plan_jobs, shards

    one = _png(tmp_path / "z.png")
    d = tmp_path / "d"
    _png(d / "c.png"), _png(d / "b.PNG"), _png(d / "sub" / "a.jpg"), _png(d / "sub" / "deeper" / "a.png")
    (d / "notes.txt").write_text("x")
    (d / "sub" / "folder.png").mkdir()  # a folder named like an image is not one
    (d / "only_folders" / "x").mkdir(parents=True)  # no images: no shard
    out = d / "restored"
    _png(out / "old.png", ours=True)  # an earlier run's output, inside the input tree: not an input
    plan = shards([one, d], out)
    assert [(s.out, s.images) for s in plan] == [(str(out), 3), (str(out / "sub"), 1), (str(out / "sub" / "deeper"), 1)]
    jobs = plan_jobs([one, d], out, compare=False)
    assert [(Path(j.source).relative_to(tmp_path).as_posix(), Path(j.target).relative_to(out).as_posix())
            for j in jobs] == [("z.png", "z.png"), ("d/b.PNG", "b.png"), ("d/c.png", "c.png"),
                               ("d/sub/a.jpg", "sub/a.png"), ("d/sub/deeper/a.png", "sub/deeper/a.png")]
    assert [j.index for j in jobs] == [0, 1, 2, SHARD_SPAN, 2 * SHARD_SPAN]
    assert all(j.moved is None for j in jobs)  # the two images named a are in different folders
    with pytest.raises(UserError, match=r"gone\.png: no such file or folder: give image files or folders of images"):
        shards([one, tmp_path / "gone.png"], out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="^no images found in the inputs: give image files or folders of images$"):
        shards([tmp_path / "empty"], out)


def test_each_job_is_its_input_its_size_and_a_free_output_name(tmp_path):
    from elir_edge.restore.plan import plan_jobs

    a, b = _png(tmp_path / "in" / "a.png", 1), _png(tmp_path / "in2" / "a.png", 2)  # two inputs named a
    out = tmp_path / "out"
    _png(out / "a_compare.png", ours=False)  # a user's own file where a strip would go
    jobs = plan_jobs([a, b], out, compare=True)
    assert [j.index for j in jobs] == [0, 1]
    assert [j.source for j in jobs] == [str(a.resolve()), str(b.resolve())]
    assert [j.size for j in jobs] == [a.stat().st_size, b.stat().st_size]
    assert [j.target for j in jobs] == [str(out / "a.png"), str(out / "a.restored.png")]
    assert [j.compare for j in jobs] == [str(out / "a_compare.restored.png"), str(out / "a_compare.restored-2.png")]
    assert jobs[0].moved is None and "already written by this run (two inputs share the name a)" in jobs[1].moved
    assert jobs[0].to_dict() == {"index": 0, "source": str(a.resolve()), "size": a.stat().st_size,
                                 "target": str(out / "a.png"), "compare": str(out / "a_compare.restored.png"),
                                 "moved": None}
    assert all(j.compare is None for j in plan_jobs([a], out, compare=False))


def test_an_output_never_replaces_an_input_or_a_users_file_but_replaces_its_own(tmp_path):
    from elir_edge.restore.plan import OutputNames

    folder = tmp_path / "f"
    src = _png(folder / "x.png")  # restoring in place: the plain name is the input itself
    _png(folder / "x.restored.png")  # a user's file
    _png(folder / "y.png", ours=True)  # our own earlier output: may be replaced
    names = OutputNames(folder, [src])
    p, why = names.target(src, "")
    assert p == folder / "x.restored-2.png" and why == f"{folder / 'x.png'} is one of the inputs"
    assert names.target(folder / "elsewhere" / "y.png", "") == (folder / "y.png", None)
    p, why = names.target(tmp_path / "y.png", "")
    assert p == folder / "y.restored.png" and "two inputs share the name y" in why
    again = _png(folder / "z.png", ours=True)  # an earlier output restored again, in place: still an input
    assert OutputNames(folder, [again]).target(again, "") == (folder / "z.restored.png",
                                                              f"{folder / 'z.png'} is one of the inputs")
    _png(folder / "w.png")
    p, why = OutputNames(folder, []).target(tmp_path / "w.jpg", "_compare")
    assert p == folder / "w_compare.png" and why is None
    assert OutputNames(folder, []).target(tmp_path / "w.jpg", "") == \
        (folder / "w.restored.png", f"{folder / 'w.png'} exists and was not written by elir-edge")


def test_resume_keeps_an_output_only_if_it_is_this_inputs_result_with_these_settings(tmp_path):
    import hashlib
    import json

    from elir_edge.common.images import save_png
    from elir_edge.restore.plan import STAMP, already_done, plan_jobs, stamp

    src = _png(tmp_path / "in" / "a.png")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    job = plan_jobs([src], tmp_path / "out", compare=False)[0]
    settings = {"artifact_sha256": "ab", "tile": 256}
    assert json.loads(stamp(sha, settings)) == {"input_sha256": sha, "artifact_sha256": "ab", "tile": 256}
    assert stamp(sha, {"tile": 1, "b": 2}) == stamp(sha, {"b": 2, "tile": 1})  # key order is not a difference
    img = np.zeros((8, 8, 3), np.uint8)
    assert not already_done(job, sha, settings)  # nothing written yet
    save_png(img, tmp_path / "out" / "a.png", {STAMP: stamp(sha, settings)})
    assert already_done(job, sha, settings)
    assert not already_done(job, sha, {**settings, "tile": 128})  # other settings
    assert not already_done(job, "0" * 64, settings)  # another input's content under the same name
    Image.fromarray(img).save(tmp_path / "out" / "a.png", pnginfo=_info({STAMP: stamp(sha, settings)}))
    assert not already_done(job, sha, settings)  # stamped, but not tagged as ours
    strip = plan_jobs([src], tmp_path / "out2", compare=True)[0]
    save_png(img, tmp_path / "out2" / "a.png", {STAMP: stamp(sha, settings)})
    assert not already_done(strip, sha, settings)  # its comparison strip is missing
    save_png(img, tmp_path / "out2" / "a_compare.png")
    assert already_done(strip, sha, settings)


def _info(text):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return info


def test_a_long_runs_rows_are_counted_not_kept():
    """A fleet's run has millions of rows (~0.7 KB each in Python): the driver passes each on (to the report's
    .partial) and keeps only the counts and when each restored image came, 8 bytes each."""
    import time
    import tracemalloc

    from elir_edge.restore.stage import _collect

    n = 20_000
    rows = ({"index": i, "path": f"/archive/{i:07d}.jpg", "output": f"/out/{i:07d}.png", "input_sha256": "ab" * 32,
             "status": ("restored", "failed", "kept")[i % 3], "error": "x" if i % 3 == 1 else None,
             "moved": f"/out/{i:07d}.png" if i % 30 == 0 else None} for i in range(n))
    passed = []
    tracemalloc.start()
    with pytest.warns(UserWarning):
        tally = _collect(rows, n, False, time.perf_counter(), lambda r: passed.append(r["index"]))
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert passed == list(range(n)) and tally.rows == n and tally.restored == tally.failed == 6667
    assert tally.kept == 6666 and tally.renamed == 667 and len(tally.restored_at) == 6667  # indices 0, 30, ... 19980
    assert held - 56 * len(passed) < 32 * n  # the list `passed` itself apart: ~8 bytes a row, not ~700


def test_a_skipped_image_is_said_while_the_run_goes_on(tiny_quantized, tmp_path, capsys, monkeypatch):
    """The warning for an image that cannot be restored is printed when it happens (a fleet's run lasts hours),
    one line, not kept until the run ends."""
    from PIL import Image

    import elir_edge.restore.stage as stage
    from elir_edge.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "b_fine.png")
    said, real = [], stage._summary
    monkeypatch.setattr(stage, "_summary", lambda *a: said.append(capsys.readouterr().err) or real(*a))
    assert main(["restore", str(tiny_quantized[0] / "model.onnx"), str(folder), "-o", str(tmp_path / "out"), "-q"]) == 0
    (before_the_end,) = said
    lines = [line for line in before_the_end.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("elir-edge restore: warning: skipped ") and "a_broken.png" in lines[0]
    assert "warning" not in capsys.readouterr().err  # said once
