"""Stage 3, engines: an ONNX graph of ours -> a serialized NVIDIA engine with a manifest beside it.

`--target rtx` (TensorRT for RTX) builds ahead of time on any machine for chosen compute capabilities
(SM75 = RTX 2080 Ti); `--target tensorrt` builds on the GPU the engine is for.

    from elir_edge.engines import BuildOptions, build_engine
"""

from elir_edge.engines.stage import BuildOptions, build_engine, turing_engine

__all__ = ["BuildOptions", "build_engine", "turing_engine"]
