"""TensorRT for RTX: builds ahead of time on any machine, GPU or not, for chosen compute capabilities;
the plan finishes compiling (JIT) on the RTX GPU when it is first loaded."""

from __future__ import annotations

from pathlib import Path

from elir_edge.engines.build import BuilderMissing, BuildError, BuildOptions, build, with_tf32
from elir_edge.engines.support import RTX_MATRIX, rtx_support
from elir_edge.errors import UserError
from elir_edge.runtime.tensorrt_rtx import SMS  # the compute capabilities TensorRT-RTX targets, one table

INSTALL = "pip install 'elir-edge[rtx]' (NVIDIA's tensorrt-rtx-cu12 from PyPI; no GPU needed to build)"


def import_rtx():
    try:
        import tensorrt_rtx
    except ImportError:
        raise BuilderMissing(f"TensorRT-RTX is not installed: {INSTALL}") from None
    return tensorrt_rtx


def check_sms(sms: list[str]) -> list[str]:
    clean = [s.lower().removeprefix("sm").lstrip("_").replace(".", "") for s in sms]
    unknown = [s for s in clean if s not in SMS]
    if unknown or not clean:
        raise UserError(f"--sm {unknown[0] if unknown else ''}: TensorRT-RTX builds for compute capability "
                        f"{', '.join(SMS)} ({'; '.join(f'{k} {v}' for k, v in SMS.items())}): pick from those")
    return list(dict.fromkeys(clean))


def set_targets(trt, config, sms: list[str]) -> None:
    """The compute capabilities to compile for; set_compute_capability answers False where this TensorRT-RTX
    cannot target one (its docstring: "True if successful, false otherwise"), which would build for fewer."""
    config.num_compute_capabilities = len(sms)
    for i, sm in enumerate(sms):
        if not config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{sm}"), i):
            raise BuildError(f"--sm {sm}: TensorRT-RTX {trt.__version__} refused compute capability SM{sm}: build "
                             "for the others, or with a TensorRT-RTX that targets it")


def build_rtx(onnx_path: Path, opts: BuildOptions, quiet: bool = False) -> tuple[bytes, dict]:
    """The plan and its manifest (see build.write_engine)."""
    sms = check_sms(opts.sms)
    trt = import_rtx()

    def configure(config, network, flags):
        set_targets(trt, config, sms)
        config.set_flag(trt.BuilderFlag.REQUIRE_USER_ALLOCATION)  # so --cuda-graph can be captured

    meta = {"builder": "tensorrt-rtx", "builder_version": trt.__version__, "target_sms": sms,
            "target_gpus": [SMS[s] for s in sms], "require_user_allocation": True,
            "note": "compiled ahead of time; the plan finishes compiling on the GPU at first load"}
    plan, manifest = build(trt, onnx_path, opts, configure, meta, quiet,
                           using=f"with TensorRT-RTX for {', '.join('SM' + s for s in sms)}")
    manifest["support"] = rtx_support(sms, manifest["precision"]) or [f"listed in NVIDIA's matrix ({RTX_MATRIX})"]
    manifest["precision"] = with_tf32(manifest["precision"], opts.tf32, sms)
    return plan, manifest
