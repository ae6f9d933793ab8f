"""elir-edge: ELIR from a PyTorch checkpoint to a verified, quantized edge artifact.

The stages are importable on their own; the CLI (`elir_edge.cli`) is a thin layer over them:
checkpoint -> folded model -> unrolled graph -> ONNX -> quantized ONNX -> engine -> report.
"""

__version__ = "0.1.0"
