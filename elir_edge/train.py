"""Train a small ELIR on the CPU with the paper's objective, in the training-checkpoint format.

Stage 1 trains the tiny auto-encoder on clean crops (reconstruction). Stage 2 freezes its decoder
(and a teacher copy of its encoder), fine-tunes the encoder on degraded inputs, and trains the
over-parameterized coarse estimator and U-Net with the paper's loss (`l2_cfm_mse`): the coarse
estimator's latent L2 loss, the multi-segment consistency flow-matching loss (segments = K, the
paper's dt and alpha) and the small pixel MSE term (beta), keeping EMA weights.

    python -m elir_edge.train --out elir_edge/demo/elir_demo.ckpt      # the bundled demo model
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from elir_edge.common.degrade import degrade
from elir_edge.model.arch import ArchConfig, Elir, build_elir, time_embedding

DEMO_ARCH = ArchConfig(latent_channels=16, ae_width=32, unet_hid=32, ch_mult=(1, 2, 1, 2), n_mid_blocks=1,
                       t_emb_dim=160, rrdb_hid=32, n_rrdb=1, fmir_overparam=True, mmse_overparam=True)


@dataclass
class TrainConfig:
    task: str = "denoising"
    k_steps: int = 3
    sigma_s: float = 0.025
    image_size: int = 256  # the size the model is exported at by default
    arch: ArchConfig = field(default_factory=lambda: DEMO_ARCH)
    ae_steps: int = 1500
    ae_crop: int = 64
    ae_batch: int = 16
    ae_lr: float = 1e-3
    elir_steps: int = 2500
    elir_crop: int = 128
    elir_batch: int = 4
    elir_lr: float = 5e-4
    ema_decay: float = 0.999
    sigma_min: float = 1e-5
    dt: float = 0.05
    alpha: float = 0.001
    beta: float = 0.001
    seed: int = 2025


class CropSampler:
    """Random crops with flips from whole images, degraded by the task, reproducible from a seed."""

    def __init__(self, images: list[np.ndarray], task: str, seed: int):
        self.images, self.task = images, task
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int, size: int, degraded: bool = True):
        hq, lq = [], []
        for _ in range(n):
            img = self.images[self.rng.integers(len(self.images))]
            h, w = img.shape[:2]
            y, x = self.rng.integers(0, h - size + 1), self.rng.integers(0, w - size + 1)
            crop = img[y:y + size, x:x + size]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = np.ascontiguousarray(crop)
            hq.append(crop)
            if degraded:
                lq.append(degrade(self.task, crop, int(self.rng.integers(2 ** 31))))

        def to_t(xs):
            return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255

        return (to_t(hq), to_t(lq)) if degraded else to_t(hq)


def elir_loss(model: Elir, teacher_enc, x_hq, x_lq, cfg: TrainConfig) -> torch.Tensor:
    """The paper's l2_cfm_mse objective (the reference's `l2_cfm_mse_loss`)."""
    t_dim, K, dt, smin = cfg.arch.t_emb_dim, cfg.k_steps, cfg.dt, cfg.sigma_min
    with torch.no_grad():
        z_hq = teacher_enc(x_hq)
    z_mmse = model.mmse(model.enc(x_lq))
    loss = F.mse_loss(z_mmse, z_hq)

    bs = x_hq.shape[0]
    z0 = z_mmse.detach() + cfg.sigma_s * torch.randn_like(z_mmse)
    t = (1 - dt) * torch.rand(bs, 1, 1, 1)
    segments = torch.linspace(0, 1, K + 1)
    seg_ends = segments[torch.searchsorted(segments, t, side="left").clamp(min=1)]

    def path(s):
        return (1 - (1 - smin) * s) * z0 + s * z_hq

    z_t = path(t)
    v = model.fmir(z_t, time_embedding(t, t_dim))
    with torch.no_grad():
        r = t + dt
        z_r = path(r)
        v_r = model.fmir(z_r, time_embedding(r, t_dim))
    f = z_t + (seg_ends - t) * v
    r_before = r < seg_ends
    f_target = r_before * (z_r + (seg_ends - r) * v_r) + (~r_before) * path(seg_ends)
    loss = loss + (1 - cfg.beta) * (F.mse_loss(f, f_target) + cfg.alpha * F.mse_loss(v, v_r))

    f1 = f.detach()
    z1 = f1 + (1 - seg_ends) * model.fmir(f1, time_embedding(seg_ends, t_dim))
    return loss + cfg.beta * F.mse_loss(model.dec(z1), x_hq)


def _log(stage: str, step: int, total: int, loss: float, t0: float) -> None:
    el = time.perf_counter() - t0
    eta = el / step * (total - step)
    print(f"{stage} {step}/{total} loss {loss:.5f}  {el:.0f} s elapsed, ~{eta:.0f} s left", flush=True)


def train_autoencoder(model: Elir, sampler: CropSampler, cfg: TrainConfig, log_every: int = 100) -> None:
    params = list(model.enc.parameters()) + list(model.dec.parameters())
    opt = torch.optim.Adam(params, lr=cfg.ae_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.ae_steps)
    t0 = time.perf_counter()
    for step in range(1, cfg.ae_steps + 1):
        x = sampler.batch(cfg.ae_batch, cfg.ae_crop, degraded=False)
        loss = F.mse_loss(model.dec(model.enc(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == cfg.ae_steps:
            _log("autoencoder", step, cfg.ae_steps, loss.item(), t0)


def train_elir(model: Elir, sampler: CropSampler, cfg: TrainConfig, log_every: int = 100) -> Elir:
    """Returns the EMA model; the decoder stays the auto-encoder's, frozen."""
    teacher_enc = copy.deepcopy(model.enc).eval().requires_grad_(False)
    model.dec.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.elir_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.elir_steps)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    t0 = time.perf_counter()
    for step in range(1, cfg.elir_steps + 1):
        hq, lq = sampler.batch(cfg.elir_batch, cfg.elir_crop)
        loss = elir_loss(model, teacher_enc, hq, lq, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        ema.update_parameters(model)
        if step % log_every == 0 or step == cfg.elir_steps:
            _log("elir", step, cfg.elir_steps, loss.item(), t0)
    return ema.module.eval()


def save_training_checkpoint(model: Elir, path: Path, cfg: TrainConfig, info: dict) -> None:
    """The spec's training format: state_dict_<part> (EMA, over-parameterized) + Lightning-style extras."""
    obj = {f"state_dict_{p}": {k: v.detach().clone() for k, v in getattr(model, p).state_dict().items()}
           for p in ("fmir", "mmse", "enc", "dec")}
    obj["hyper_parameters"] = {"task": cfg.task, "k_steps": cfg.k_steps, "sigma_s": cfg.sigma_s,
                               "image_size": cfg.image_size}
    obj["elir_edge_training"] = json.dumps({**info, "config": {**asdict(cfg), "arch": cfg.arch.to_dict()}})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def main(argv=None) -> None:
    from elir_edge.demo.data import TRAINING, load

    ap = argparse.ArgumentParser(description="Train the small demo ELIR on the CPU.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ae-steps", type=int, default=TrainConfig.ae_steps)
    ap.add_argument("--elir-steps", type=int, default=TrainConfig.elir_steps)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(ae_steps=args.ae_steps, elir_steps=args.elir_steps)
    torch.manual_seed(cfg.seed)
    images = [load(n) for n in TRAINING]
    sampler = CropSampler(images, cfg.task, cfg.seed)
    model = build_elir(cfg.arch, cfg.k_steps, cfg.sigma_s).train()
    t0 = time.perf_counter()
    train_autoencoder(model, sampler, cfg)
    t_ae = time.perf_counter() - t0
    ema = train_elir(model, sampler, cfg)
    info = {"training_images": list(TRAINING), "seconds_autoencoder": round(t_ae),
            "seconds_total": round(time.perf_counter() - t0), "threads": args.threads,
            "torch": torch.__version__}
    save_training_checkpoint(ema, args.out, cfg, info)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {info['seconds_total']} s")


if __name__ == "__main__":
    main()
