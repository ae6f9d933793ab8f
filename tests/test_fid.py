"""bench/fid.py against expectations from outside it: FID and KID worked out with numpy and scipy from their
published formulas, the uint8 conversion by hand, the features of a batch equal to those of one image at a time,
and every way the Inception weights can be missing or unsafe, each named."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torchmetrics.utilities.imports

import elir_edge.bench.fid as fid
from elir_edge.errors import UserError

WIDE = 2048  # the Inception feature width torchmetrics' FID/KID are set up for


def _features(n: int, used: int, shift: float, seed: int, first: int = 0) -> np.ndarray:
    """n x 2048 float32 features, non-zero in `used` columns from `first` only (so scipy works on a small block)."""
    out = np.zeros((n, WIDE), np.float32)
    out[:, first:first + used] = np.random.default_rng(seed).normal(shift, 1.0, (n, used))
    return out


def _fid_by_hand(real: np.ndarray, fake: np.ndarray, used: int) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) with unbiased covariances, on the non-zero block (the
    zero columns add nothing to any term)."""
    a, b = real[:, :used].astype(np.float64), fake[:, :used].astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def _kid_by_hand(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """The unbiased MMD^2 with the cubic kernel (x.y / d + 1)^3 over all samples (KID's subsets of all n samples are
    permutations of them, each the same MMD), and the kernel's mean level (the scale of its rounding)."""
    x, y = real.astype(np.float64), fake.astype(np.float64)
    k = lambda p, q: (p @ q.T / WIDE + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = len(x)
    value = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2
    return float(value), float(np.mean(kxx))


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_fid_and_kid_equal_their_formulas_worked_out_with_numpy_and_scipy(shift):
    real, fake = _features(40, 6, 0.0, 1), _features(40, 6, shift, 2)
    got = fid.fid_kid_of(real, fake, reference=True, seed=3)
    want = _fid_by_hand(real, fake, 6)
    scale = float(np.trace(np.cov(real[:, :6], rowvar=False)) + np.trace(np.cov(fake[:, :6], rowvar=False)))
    assert got["fid"] == pytest.approx(want, abs=1e-5 * scale)
    kid, level = _kid_by_hand(real, fake)
    assert got["kid"] == pytest.approx(kid, abs=1e-5 * level)
    assert 0 <= got["kid_std"] <= 1e-5 * level  # every subset holds all 40 samples: the same MMD each time
    assert got["available"] and got["n"] == 40 and got["fid_biased"] and got["reference_weights"]
    assert "note" not in got


def test_fid_of_sets_that_span_other_features_is_the_formula_over_all_of_them():
    """Each set has features the other lacks (columns 0-5 against 3-10 and 1500-1507), so neither set's span holds
    the other's; FID must be the formula over every column either uses, whatever space it is computed in."""
    real, fake = _features(14, 6, 0.0, 8), _features(14, 8, 0.5, 9, first=3) + _features(14, 8, 0.2, 10, first=1500)
    used = np.r_[0:11, 1500:1508]
    got = fid.fid_kid_of(real, fake, reference=True)["fid"]
    scale = float(np.trace(np.cov(real[:, used], rowvar=False)) + np.trace(np.cov(fake[:, used], rowvar=False)))
    assert got == pytest.approx(_fid_by_hand(real[:, used], fake[:, used], len(used)), abs=1e-6 * scale)
    assert got == pytest.approx(fid.fid_kid_of(fake, real, reference=True)["fid"], abs=1e-6 * scale)  # symmetric


def test_fid_of_sets_as_many_as_their_features_wide_is_the_formula():
    """Sets with at least as many rows together as the features are wide span them all: FID on them as they are."""
    rng = np.random.default_rng(11)
    real, fake = rng.normal(0, 1, (10, 8)).astype(np.float32), rng.normal(0.4, 1.2, (10, 8)).astype(np.float32)
    got = fid.fid_kid_of(real, fake, reference=True)["fid"]
    scale = float(np.trace(np.cov(real, rowvar=False)) + np.trace(np.cov(fake, rowvar=False)))
    assert got == pytest.approx(_fid_by_hand(real, fake, 8), abs=1e-6 * scale)


def test_a_shifted_set_scores_higher_and_fid_is_zero_against_itself():
    real = _features(30, 5, 0.0, 4)
    same, shifted = fid.fid_kid_of(real, real, True), fid.fid_kid_of(real, _features(30, 5, 1.0, 5), True)
    assert abs(same["fid"]) < 1e-3 * shifted["fid"] and shifted["fid"] > 4  # ||mu||^2 alone is ~5 here
    assert shifted["kid"] > 0


def test_unbiased_from_2048_samples_and_a_note_without_the_reference_weights():
    small = fid.fid_kid_of(_features(4, 2, 0, 6), _features(4, 2, 0, 7), reference=False)
    assert small["fid_biased"] and not small["reference_weights"]
    assert small["note"] == ("not the reference Inception weights (pt_inception-2015-12-05): these values are not "
                             "FID/KID as published")
    assert fid.UNBIASED_FID_N == 2048  # Chong & Forsyth's threshold, as the docstring cites


def test_images_become_uint8_rounded_to_nearest_and_clipped():
    x = np.array([-0.5, 0.0, 0.6 / 255, 0.4 / 255, 0.5, 1.0, 1.7], np.float64)
    assert fid._uint8(x).tolist() == [0, 0, 1, 0, 128, 255, 255]
    assert fid._uint8(x).dtype == torch.uint8


class _MeanNet(torch.nn.Module):
    """A stand-in feature extractor that sees its input as the Inception net does (uint8), records the threads
    it ran with, and answers with float64 (features() must hand back float32)."""

    def __init__(self):
        super().__init__()
        self.seen, self.threads = [], []

    def forward(self, x):
        self.seen.append(x.dtype)
        self.threads.append(torch.get_num_threads())
        return x.double().mean(dim=(2, 3)).repeat(1, 3) + torch.arange(9, dtype=torch.float64)


def test_features_are_one_image_at_a_time_on_one_thread_and_the_threads_come_back():
    images = np.random.default_rng(8).random((3, 3, 8, 8)).astype(np.float32)
    net, before = _MeanNet(), torch.get_num_threads()
    out = fid.features(net, images)
    assert out.dtype == np.float32 and out.shape == (3, 9)
    assert net.seen == [torch.uint8] * 3 and net.threads == [1] * 3 and torch.get_num_threads() == before
    by_hand = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8).astype(np.float64).mean(axis=(2, 3))
    assert np.allclose(out, np.tile(by_hand, 3) + np.arange(9), rtol=0, atol=1e-4)
    assert np.array_equal(np.concatenate([fid.features(_MeanNet(), images[i:i + 1]) for i in range(3)]), out)


def test_the_threads_come_back_when_the_network_fails():
    def broken(x):
        raise RuntimeError("boom")

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        fid.features(broken, np.zeros((1, 3, 4, 4), np.float32))
    assert torch.get_num_threads() == before


def test_the_weights_found_in_torch_hubs_cache_and_only_there(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert fid.cached_weights() is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "other.pth").write_bytes(b"x")
    assert fid.cached_weights() is None
    (tmp_path / "checkpoints" / fid.WEIGHTS_NAME).mkdir()  # a folder of that name is not the weights
    assert fid.cached_weights() is None
    (tmp_path / "checkpoints" / fid.WEIGHTS_NAME).rmdir()
    (tmp_path / "checkpoints" / fid.WEIGHTS_NAME).write_bytes(b"x")
    assert fid.cached_weights() == tmp_path / "checkpoints" / fid.WEIGHTS_NAME


class Payload:
    """Pickling this needs code: a weights file holding it must not be unpickled."""


def test_an_explicit_weights_file_is_checked_before_any_work(tmp_path):
    with pytest.raises(UserError) as e:
        fid.check_weights_file(tmp_path / "none.pth")
    assert str(e.value) == (f"--fid-weights {tmp_path / 'none.pth'}: no such file: give torch-fidelity's "
                            "pt_inception-2015-12-05 weights")
    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UserError) as e:
        fid.check_weights_file(tmp_path / "evil.pth")
    assert str(e.value).startswith(f"--fid-weights {tmp_path / 'evil.pth'} is not a plain tensor file "
                                   "(UnpicklingError)")
    assert str(e.value).endswith("refusing to unpickle it: give torch-fidelity's pt_inception-2015-12-05 weights")
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pth")
    assert fid.check_weights_file(tmp_path / "plain.pth") is None


def test_each_reason_the_network_is_unavailable_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "cached_weights", lambda: None)
    assert fid.inception(None) == (None, {"available": False, "reason": "no Inception weights; pass --fid-weights"})
    assert fid.inception(tmp_path / "gone.pth") == (
        None, {"available": False, "reason": f"--fid-weights {tmp_path / 'gone.pth'}: no such file"})
    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    net, why = fid.inception(tmp_path / "evil.pth")
    assert net is None and why == {"available": False, "reason": f"--fid-weights {tmp_path / 'evil.pth'} is not a "
                                   "plain tensor file (UnpicklingError); refusing to unpickle it"}
    monkeypatch.setattr(torchmetrics.utilities.imports, "_TORCH_FIDELITY_AVAILABLE", False)
    torch.save({}, tmp_path / "plain.pth")
    assert fid.inception(tmp_path / "plain.pth") == (
        None, {"available": False, "reason": "torch-fidelity is not installed (pip install torch-fidelity)"})


def test_a_weights_file_loads_into_the_network_and_says_whether_it_is_the_reference(random_inception, monkeypatch):
    """The file's tensors are the network's (not torchmetrics' own download, not a random init), loading warns of
    nothing, and only a file whose sha256 starts with the reference's prefix counts as the reference."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net, why = fid.inception(random_inception)
    assert why is None and net.reference is False and caught == []
    saved = torch.load(random_inception, weights_only=True)
    loaded = net.state_dict()
    assert saved and saved.keys() <= loaded.keys() and all(torch.equal(loaded[k], v) for k, v in saved.items())
    prefix = hashlib.sha256(random_inception.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(fid, "REFERENCE_SHA256_PREFIX", prefix)
    assert fid.inception(random_inception)[0].reference is True


def test_an_unsafe_file_is_refused_even_where_torch_is_told_to_unpickle_by_default(tmp_path, monkeypatch):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in a user's environment makes torch.load unpickle by default: the
    checks ask for weights only explicitly."""
    torch.save({"x": Payload()}, tmp_path / "evil.pth")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UserError, match="refusing to unpickle"):
        fid.check_weights_file(tmp_path / "evil.pth")
    net, why = fid.inception(tmp_path / "evil.pth")
    assert net is None and "refusing to unpickle" in why["reason"]


def test_weights_saved_from_a_gpu_pass_the_check_and_the_network_says_whether_it_loads(random_inception, tmp_path,
                                                                                        monkeypatch):
    """A file whose tensors were saved on a GPU is plain tensors: the check reads it onto the CPU. torch-fidelity
    then loads it its own way: on a machine without CUDA that fails, and FID is unavailable with the reason in one
    line (no traceback); with CUDA it loads."""
    state = torch.load(random_inception, weights_only=True)
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, tmp_path / "gpu.pth")
    assert fid.check_weights_file(tmp_path / "gpu.pth") is None
    net, why = fid.inception(tmp_path / "gpu.pth")
    if torch.cuda.is_available():
        assert why is None and net is not None
    else:
        assert net is None and why["available"] is False and "\n" not in why["reason"]
        assert why["reason"].startswith(f"--fid-weights {tmp_path / 'gpu.pth'}: torch-fidelity cannot load it "
                                        "(RuntimeError: Attempting to deserialize object on a CUDA device")
