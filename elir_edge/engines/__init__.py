"""Engines: an ONNX graph of ours -> a serialized NVIDIA engine with a manifest beside it."""
