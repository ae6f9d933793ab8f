"""What NVIDIA says each target runs, from its own support matrices, so an engine is built for, and
labelled with, what the GPU is listed for; anything else is said to be unverified, never implied.

TensorRT-RTX support matrix, versions 1.0 to 1.5 alike ("Supported Hardware": FP32, FP16, BF16, INT8 WoQ
GEMM, INT4 WoQ GEMM, FP8, FP4 GEMM per compute capability):
https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/getting-started/support-matrix.html
TensorRT 10.x support matrix ("GPU Architecture and Precision Support": INT8 and INT8 tensor cores on 7.5):
https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/support-matrix-10/10.10.0.html
"""

from __future__ import annotations

RTX_MATRIX = "https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/getting-started/support-matrix.html"
TENSORRT_MATRIX = "https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/support-matrix-10/10.10.0.html"

# TensorRT-RTX: compute capability -> what its matrix lists ("int8-woq"/"int4-woq": weight-only GEMM, not convs)
RTX_LISTED = {
    "75": {"fp32", "fp16"},  # Turing, RTX 2080 Ti: FP32 (footnoted) and FP16 only
    "86": {"fp32", "fp16", "bf16", "int8-woq", "int4-woq"},  # Ampere, RTX 3090
    "89": {"fp32", "fp16", "bf16", "int8-woq", "int4-woq", "fp8"},  # Ada, RTX 4090
    "120": {"fp32", "fp16", "bf16", "int8-woq", "int4-woq", "fp8", "fp4"},  # Blackwell, RTX 5090
    "121": {"fp32", "fp16", "bf16", "int8-woq", "int4-woq", "fp8", "fp4"},  # Blackwell, GB10 (1.5)
}

def rtx_support(sms: list[str], precision: str) -> list[str]:
    """For a TensorRT-RTX build, one line per target whose matrix entry does not list what the graph computes
    in (an INT8 Q/DQ graph, an SM the matrix does not name); [] when NVIDIA lists it for every target."""
    notes = []
    for sm in sms:
        listed = RTX_LISTED.get(sm)
        if listed is None:
            notes.append(f"SM{sm} is not in TensorRT-RTX's support matrix: unverified")
        elif precision.startswith("int8"):
            notes.append("INT8 on Turing is not in TensorRT-RTX's support matrix: unverified" if sm == "75" else
                         f"INT8 convolutions on SM{sm} are not in TensorRT-RTX's support matrix (it lists INT8 "
                         "weight-only GEMM): unverified")
        elif precision.split(" ")[-1] not in listed:
            notes.append(f"{precision} on SM{sm} is not in TensorRT-RTX's support matrix: unverified")
    return notes
