"""Bench's quality pass, one image at a time: the scorer reads image i itself, runs every artifact and the
float reference on it, and returns a small row (PSNR/SSIM against float and ground truth, the noise floor)
plus its Inception features; the driver's aggregate turns the rows into means, bootstrap intervals, FID and
KID. The same two functions serve one process and a Ray cluster, so their figures are equal."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elir_edge.bench.fid import features, fid_kid_of
from elir_edge.bench.stats import describe
from elir_edge.common.images import UNREADABLE, read_rgb
from elir_edge.common.metrics import psnr, ssim
from elir_edge.model.eval_inputs import eval_image, paired_image
from elir_edge.model.noise import latent_noise
from elir_edge.runtime.runner import Runner

FLOOR_SEED = 10_000  # the noise floor: the float model with eps of seed + FLOOR_SEED + i


@dataclass(frozen=True)
class ScoreSettings:
    task: str
    height: int
    width: int
    latent: int
    seed: int


def items(names: list[str], paths: list[Path], gt_paths: list[Path] | None = None) -> list[dict]:
    """What a scorer is given: image i's name and file(s), never its pixels."""
    return [{"index": i, "name": n, "path": str(p), "gt": str(gt_paths[i]) if gt_paths else None}
            for i, (n, p) in enumerate(zip(names, paths))]


def item_inputs(item: dict, s: ScoreSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image i's (lq, eps, hq), read from its file(s) as eval_inputs / paired_inputs would make them."""
    i = item["index"]
    if item["gt"]:
        return paired_image(read_rgb(Path(item["path"])), read_rgb(Path(item["gt"])), i, s.height, s.width,
                            s.latent, s.seed)
    return eval_image(read_rgb(Path(item["path"])), i, s.task, s.height, s.width, s.latent, s.seed)


def first_input(todo: list[dict] | None, s: ScoreSettings) -> np.ndarray | None:
    """The first readable image's input (3 x H x W): what the speed pass times, as the quality pass sees it."""
    for item in todo or []:
        try:
            return item_inputs(item, s)[0]
        except (*UNREADABLE, FileNotFoundError):
            continue
    return None


def _pair(a: np.ndarray, b: np.ndarray) -> dict:
    return {"psnr": psnr(a, b), "ssim": ssim(a, b)}


def failed_row(item: dict, error: str) -> tuple[dict, bytes]:
    """Image i not scored, and why: counted among the failures, never in the figures."""
    return {"index": item["index"], "name": item["name"], "path": item["path"], "status": "failed",
            "error": error}, b""


class ImageScorer:
    """Every artifact and the reference on one image; `net`: the Inception network, or None (no FID)."""

    def __init__(self, arts: list[Runner], ref: Runner, s: ScoreSettings, net=None):
        self.arts, self.ref, self.s, self.net = arts, ref, s, net

    def __call__(self, item: dict) -> tuple[dict, bytes]:
        row, t0 = {"index": item["index"], "name": item["name"], "path": item["path"]}, time.perf_counter()
        try:
            lq, eps, hq = (x[None] for x in item_inputs(item, self.s))
        except (*UNREADABLE, FileNotFoundError) as e:
            return failed_row(item, f"not a readable image ({type(e).__name__})")
        s = self.s
        ref_out = self.ref(lq, eps)
        floor = self.ref(lq, latent_noise(s.latent, s.height, s.width, s.seed + FLOOR_SEED + item["index"])[None])
        outs = [ref_out if a is self.ref else a(lq, eps) for a in self.arts]
        row.update(status="scored", noise_floor_vs_float=_pair(floor, ref_out), degraded_vs_gt=_pair(lq, hq),
                   artifacts=[{"vs_gt": _pair(o, hq), **({} if a is self.ref else {"vs_float": _pair(o, ref_out)})}
                              for a, o in zip(self.arts, outs)])
        blob = features(self.net, np.concatenate([hq, ref_out, *outs])).tobytes() if self.net is not None else b""
        return {**row, "ms": (time.perf_counter() - t0) * 1000}, blob


def _described(values: list[dict], seed: int) -> dict:
    return {m: describe([v[m] for v in values], seed) for m in ("psnr", "ssim")}


def aggregate(rows: list[dict], blobs: list[bytes], n_arts: int, seed: int, fid: dict) -> dict:
    """The driver's side: rows (any order) -> the quality figures of the set and of each artifact.
    `fid`: {"reference": bool} where the rows carry features, else why they do not ({"available": False, ...})."""
    order = sorted(range(len(rows)), key=lambda k: rows[k]["index"])
    ok = [k for k in order if rows[k]["status"] == "scored"]
    good = [rows[k] for k in ok]
    failed = [rows[k] for k in order if rows[k]["status"] != "scored"]
    out = {"images": len(good), "failed": [r["path"] for r in failed],
           "failures": dict(Counter(r["error"] for r in failed)),  # each reason, with how many images
           "seed": seed, "noise_floor_vs_float": _described([r["noise_floor_vs_float"] for r in good], seed),
           "degraded_vs_gt": _described([r["degraded_vs_gt"] for r in good], seed), "artifacts": []}
    feats = np.stack([np.frombuffer(blobs[k], np.float32).reshape(n_arts + 2, -1) for k in ok]) \
        if "reference" in fid else None
    for j in range(n_arts):
        a = {"vs_gt": _described([r["artifacts"][j]["vs_gt"] for r in good], seed)}
        if "vs_float" in good[0]["artifacts"][j]:
            a["vs_float"] = _described([r["artifacts"][j]["vs_float"] for r in good], seed)
        if feats is None:
            a["fid_kid_vs_gt"] = a["fid_kid_vs_float"] = fid
        else:
            a["fid_kid_vs_gt"] = fid_kid_of(feats[:, 0], feats[:, j + 2], fid["reference"], seed)
            a["fid_kid_vs_float"] = fid_kid_of(feats[:, 1], feats[:, j + 2], fid["reference"], seed)
        out["artifacts"].append(a)
    return out
