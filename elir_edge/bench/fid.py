"""FID and KID through torchmetrics, only with real Inception weights: never with untrained ones.

The weights are torch-fidelity's `pt_inception-2015-12-05`; torch-fidelity downloads them at run time,
which these machines cannot do, so a local file is passed with --fid-weights (or found in torch's hub
cache). FID on fewer than 2048 images is biased (Chong & Forsyth 2020): KID is reported beside it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from elir_edge.common.files import sha256_file

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
REFERENCE_SHA256_PREFIX = "6726825d"  # torch hub names a file by its sha256's first 8 hex digits
UNBIASED_FID_N = 2048


def cached_weights() -> Path | None:
    p = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
    return p if p.is_file() else None


def check_weights_file(path: Path) -> None:
    """An explicit --fid-weights must be a readable file of plain tensors (checked before any work)."""
    from elir_edge.errors import UserError

    if not path.is_file():
        raise UserError(f"--fid-weights {path}: no such file: give torch-fidelity's pt_inception-2015-12-05 weights")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"--fid-weights {path} is not a plain tensor file ({type(e).__name__}); refusing to "
                        "unpickle it: give torch-fidelity's pt_inception-2015-12-05 weights") from None


def inception(weights: Path | None):
    """(the Inception network, None) or (None, {"available": False, "reason": ...})."""
    weights = weights or cached_weights()
    if weights is None:
        return None, {"available": False, "reason": "no Inception weights; pass --fid-weights"}
    if not Path(weights).is_file():
        return None, {"available": False, "reason": f"--fid-weights {weights}: no such file"}
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        return None, {"available": False, "reason": "torch-fidelity is not installed (pip install torch-fidelity)"}
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:  # torch-fidelity unpickles the file with weights_only=False: check it holds tensors only first
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        return None, {"available": False, "reason": f"--fid-weights {weights} is not a plain tensor file "
                                                    f"({type(e).__name__}); refusing to unpickle it"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                     feature_extractor_weights_path=str(weights))
    except Exception as e:  # noqa: BLE001 - torch-fidelity's own load, e.g. of a file saved from a GPU, here on a CPU
        return None, {"available": False, "reason": f"--fid-weights {weights}: torch-fidelity cannot load it "
                                                    f"({type(e).__name__}: {str(e).splitlines()[0][:120]})"}
    net.reference = sha256_file(Path(weights)).startswith(REFERENCE_SHA256_PREFIX)
    return net, None


def features(net, images: np.ndarray) -> np.ndarray:
    """N x 2048 float32 Inception features, one image at a time on one thread: an image's features are then
    the same bytes whichever process, worker or batch computes them on this kind of CPU (convolutions split
    over more threads sum in another order), so the statistics of a Ray run equal one process's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return np.concatenate([net(_uint8(img[None])).numpy().astype(np.float32) for img in images])
    finally:
        torch.set_num_threads(threads)


class _Given(torch.nn.Module):
    """Features computed already go through torchmetrics' FID and KID as they are."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _in_their_span(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets in float64 coordinates of an orthonormal basis of the space their rows span, where that space is
    narrower than the features (fewer than 2048 images in all). FID is unchanged by a rotation, and both sets'
    means and covariances lie in that space: the distance is the same, but torchmetrics' eigenvalues are those of
    an (n_real + n_fake)-wide matrix, not of a 2048-wide one (about 4 s a FID on one core of a Zen 4)."""
    both = np.concatenate([real, fake]).astype(np.float64)
    if len(both) >= both.shape[1]:
        return real.astype(np.float64), fake.astype(np.float64)
    basis = np.linalg.qr(both.T)[0]  # features x (n_real + n_fake), orthonormal columns spanning every row
    return real @ basis, fake @ basis


def fid_kid_of(real: np.ndarray, fake: np.ndarray, reference: bool, seed: int = 0) -> dict:
    """FID (float64 sums of the features, in the space they span) and KID (its subsets drawn from `seed`) of two
    feature sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = len(real)
    real_in, fake_in = _in_their_span(real, fake)  # KID's kernel reads the width: not for KID
    fid = FrechetInceptionDistance(feature=_Given(real_in.shape[1]))
    kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=50, subset_size=min(n, 1000))
    for metric, (r, f) in ((fid, (real_in, fake_in)), (kid, (real, fake))):
        metric.update(torch.from_numpy(r), real=True)
        metric.update(torch.from_numpy(f), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"available": True, "fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
            "n": n, "fid_biased": n < UNBIASED_FID_N, "reference_weights": reference,
            **({} if reference else {"note": "not the reference Inception weights (pt_inception-2015-12-05): "
                                             "these values are not FID/KID as published"})}


def _uint8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((np.clip(np.asarray(images, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8))
