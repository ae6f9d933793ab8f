"""Runtimes: every artifact behind one call, `runner(lq, eps) -> hq` on NCHW float32 numpy arrays.

`open_runner` picks the backend by artifact (.onnx -> ONNX Runtime, .trt/.engine/.plan -> TensorRT);
`pytorch` runs the looped reference. One module per backend, none imports another; `interface` reads
what a graph expects, `batching` feeds static-batch graphs.

    from elir_edge.runtime import open_runner
"""

from elir_edge.runtime.open import open_runner

__all__ = ["open_runner"]
