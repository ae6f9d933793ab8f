"""Runtimes: every artifact behind one call, `runner(lq, eps) -> hq` on NCHW float32 numpy arrays.

`open_runner` picks the backend by artifact: .onnx -> ONNX Runtime (`ort`) or OpenVINO (`openvino`),
.engine/.trt/.plan -> TensorRT-RTX or TensorRT as the engine's manifest says (`tensorrt_rtx`, `tensorrt`,
both through `engine` over the CUDA layer `cuda`), an export's weights -> the looped PyTorch model
(`pytorch`, CPU or CUDA). One module per backend, none imports another; `interface` reads what a graph
expects, `batching` feeds static-batch graphs, `cpu_roof` measures this CPU's convolution roof, `runner` is the
contract every backend keeps, `probe` checks an int8 file computes right here.

    from elir_edge.runtime import open_runner
"""

from elir_edge.runtime.open import open_runner

__all__ = ["open_runner"]
