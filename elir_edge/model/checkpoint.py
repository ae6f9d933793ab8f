"""Load either ELIR checkpoint format safely and read the architecture off the tensor shapes."""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from elir_edge.common.files import sha256_file
from elir_edge.errors import UserError
from elir_edge.model.arch import ArchConfig, model_shapes

PARTS = ("fmir", "mmse", "enc", "dec")


@dataclass
class Checkpoint:
    """An ELIR checkpoint as four un-prefixed state dicts plus where it came from."""

    path: Path
    format: str  # "release" (flat, prefixed) or "training" (state_dict_<part> entries)
    parts: dict[str, dict[str, torch.Tensor]]
    sha256: str
    arch: ArchConfig
    hyper: dict = field(default_factory=dict)  # task settings a checkpoint may carry

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{p}.{k}": v for p in PARTS for k, v in self.parts[p].items()}


def _read(path: Path) -> object:
    if not path.exists():
        raise UserError(f"{path}: no such file: give the path of an ELIR .pth or .ckpt checkpoint")
    if path.is_dir():
        raise UserError(f"{path} is a directory: give the checkpoint file inside it, not the folder")
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty: the file was not written completely; copy or download it again")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":  # torch.save's zip archive, or a legacy pickle
        raise UserError(f"{path} is not a PyTorch checkpoint (neither a torch.save archive nor a pickle): "
                        "give a file written by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" not in text and "global" not in text:
            raise UserError(f"{path} is not a PyTorch checkpoint (no tensors could be read): "
                            "give a file written by torch.save") from None
        found = re.search(r"GLOBAL ([\w.]+)", text)
        hint = f"it references {found.group(1)}" if found else "not plain tensors"
        raise UserError(f"{path} needs arbitrary code to unpickle ({hint}); refusing to run it: "
                        "re-save it as tensors only, e.g. torch.save(model.state_dict(), 'elir.pth')") from None
    except Exception as e:  # a damaged file surfaces as RuntimeError, EOFError, KeyError, BadZipFile, ...
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}" if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({reason[:120]}): "
                        "check the file is complete and was written by torch.save") from None


def _flatten_training(obj: dict) -> dict[str, dict]:
    missing = [f"state_dict_{p}" for p in PARTS if f"state_dict_{p}" not in obj]
    if missing:
        raise UserError(f"training checkpoint lacks {', '.join(missing)}: save the EMA weights of all four "
                        "modules (state_dict_fmir, state_dict_mmse, state_dict_enc, state_dict_dec)")
    return {p: dict(obj[f"state_dict_{p}"]) for p in PARTS}


def _split_release(sd: dict) -> dict[str, dict]:
    parts = {p: {} for p in PARTS}
    stray = []
    for k, v in sd.items():
        prefix, _, rest = k.partition(".")
        if prefix in parts and rest:
            parts[prefix][rest] = v
        else:
            stray.append(k)
    absent = [p for p in PARTS if not parts[p]]
    if absent and len(absent) < len(PARTS):
        raise UserError(f"checkpoint has no weights for {', '.join(absent)}: an ELIR state dict holds keys prefixed "
                        "fmir., mmse., enc. and dec.; save the whole model's state_dict")
    if absent:
        sample = ", ".join(list(sd)[:3])
        raise UserError(f"not an ELIR checkpoint (keys like {sample}): expected keys prefixed fmir., mmse., enc., dec. "
                        "or a training checkpoint with state_dict_fmir/_mmse/_enc/_dec")
    if stray:
        raise UserError(f"unexpected keys outside the four ELIR modules: {_names(stray)}: remove them from the state dict")
    return parts


def _names(keys, limit: int = 4) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _indices(sd: dict, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.match(k))})


def _shape(sd: dict, part: str, key: str) -> tuple:
    if key not in sd:
        raise UserError(f"missing key {part}.{key}: this is not a complete ELIR {part} state dict; "
                        "export it again from the trained model")
    return tuple(sd[key].shape)


def infer_arch(parts: dict[str, dict]) -> ArchConfig:
    """Read widths, depths and the over-parameterization of each module off the tensor shapes."""
    f, m, e = parts["fmir"], parts["mmse"], parts["enc"]
    ae_width, _, _, _ = _shape(e, "enc", "layers.0.weight")
    latent = _shape(e, "enc", "layers.14.weight")[0]
    hid, fin = _shape(f, "fmir", "first_proj.weight")[:2]
    t_emb = _shape(f, "fmir", "time_mlp.linear1.weight")[1]
    downs = _indices(f, r"down_blocks\.(\d+)\.")
    if not downs:
        raise UserError("missing keys fmir.down_blocks.*: this is not an ELIR U-Net state dict")
    ch_mult, chs, rescale = [], hid, True
    for i in downs:
        w = f.get(f"down_blocks.{i}.1.conv.weight")
        if w is None:
            ch_mult.append(1)
        else:
            ch_mult.append(w.shape[0] // chs)
            rescale = w.shape[-1] == 3
            chs = w.shape[0]
    mmse_over = "lrm.0.RDB1.conv1.block.1.weight" in m and m["lrm.0.RDB1.conv1.block.1.weight"].dim() == 4
    rrdb_hid = _shape(m, "mmse", "lrm.0.RDB1.conv1.block.1.weight" if mmse_over else "lrm.0.RDB1.conv1.block.0.weight")[0]
    return ArchConfig(
        latent_channels=latent, ae_width=ae_width, unet_hid=hid, ch_mult=tuple(ch_mult),
        n_mid_blocks=len(_indices(f, r"mid_blocks\.(\d+)\.")), t_emb_dim=t_emb, use_rescale_conv=rescale,
        rrdb_hid=rrdb_hid, n_rrdb=len(_indices(m, r"lrm\.(\d+)\.")),
        fmir_overparam="down_blocks.0.0.block1.block.3.weight" in f, mmse_overparam=mmse_over)


def _validate(parts: dict[str, dict], arch: ArchConfig) -> None:
    """Compare key sets and shapes with the model the shapes imply; name every difference."""
    expected = model_shapes(arch).state_dict()
    given = {f"{p}.{k}": v for p in PARTS for k, v in parts[p].items()}
    missing, extra = set(expected) - set(given), set(given) - set(expected)
    if missing:
        raise UserError(f"checkpoint is missing {len(missing)} key(s): {_names(missing)}: "
                        "the file is incomplete or from another model version")
    if extra:
        raise UserError(f"checkpoint has {len(extra)} unexpected key(s): {_names(extra)}: "
                        "remove them, or check the file is an ELIR checkpoint")
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(given[k].shape)]
    if bad:
        k = bad[0]
        raise UserError(f"shape of {k} is {tuple(given[k].shape)}, expected {tuple(expected[k].shape)} "
                        f"({len(bad)} mismatched): the modules disagree in width; export all four from one model")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load with weights_only=True, tell the format apart by content, infer and validate the architecture."""
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict: save model.state_dict() instead")
    hyper = {}
    if any(k.startswith("state_dict_") for k in obj):
        fmt, parts = "training", _flatten_training(obj)
        hp = obj.get("hyper_parameters")
        hyper = {k: hp[k] for k in ("task", "k_steps", "sigma_s", "image_size") if isinstance(hp, dict) and k in hp}
    else:
        sd = obj.get("state_dict") if isinstance(obj.get("state_dict"), dict) else obj
        if not all(isinstance(v, torch.Tensor) for v in sd.values()) or not sd:
            raise UserError(f"{path} is not a state dict of tensors: save model.state_dict() of the ELIR model")
        fmt, parts = "release", _split_release(sd)
    for p in PARTS:
        if not all(isinstance(v, torch.Tensor) for v in parts[p].values()):
            raise UserError(f"{p} weights in {path} are not all tensors: save the module's state_dict()")
    arch = infer_arch(parts)
    _validate(parts, arch)
    parts = {p: {k: v.float() for k, v in sd.items()} for p, sd in parts.items()}
    return Checkpoint(path=path, format=fmt, parts=parts, sha256=sha256_file(path), arch=arch, hyper=hyper)
