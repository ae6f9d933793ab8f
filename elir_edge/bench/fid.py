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


def fid_kid(real: np.ndarray, fake: np.ndarray, weights: Path | None) -> dict:
    """real, fake: N x 3 x H x W in [0,1]. {"available": False, "reason": ...} when it cannot be computed."""
    weights = weights or cached_weights()
    if weights is None:
        return {"available": False, "reason": "no Inception weights; pass --fid-weights"}
    if not Path(weights).is_file():
        return {"available": False, "reason": f"--fid-weights {weights}: no such file"}
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        return {"available": False, "reason": "torch-fidelity is not installed (pip install torch-fidelity)"}
    from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
    from torchmetrics.image.kid import KernelInceptionDistance

    try:  # torch-fidelity unpickles the file with weights_only=False: check it holds tensors only first
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        return {"available": False, "reason": f"--fid-weights {weights} is not a plain tensor file "
                                              f"({type(e).__name__}); refusing to unpickle it"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=str(weights))
    n = len(real)
    # with a feature network passed in, torchmetrics skips its own float->uint8 step: Inception wants uint8
    fid = FrechetInceptionDistance(feature=net)
    kid = KernelInceptionDistance(feature=net, subsets=50, subset_size=min(n, 1000))
    for metric in (fid, kid):
        metric.update(_uint8(real), real=True)
        metric.update(_uint8(fake), real=False)
    kid_mean, kid_std = kid.compute()
    reference = sha256_file(Path(weights)).startswith(REFERENCE_SHA256_PREFIX)
    return {"available": True, "fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
            "n": n, "fid_biased": n < UNBIASED_FID_N, "reference_weights": reference,
            **({} if reference else {"note": "not the reference Inception weights (pt_inception-2015-12-05): "
                                             "these values are not FID/KID as published"})}


def _uint8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((np.clip(np.asarray(images, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8))
