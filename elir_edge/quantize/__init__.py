"""Stage 2, quantize: export folder + calibration images -> Sony MCT post-training INT8 -> Q/DQ ONNX in
TensorRT form and ONNX Runtime CPU form, checked against TensorRT's rules, with drift per block and
per Euler step (`quant_report.json`).

    from elir_edge.quantize import QuantizeOptions, quantize_export
"""

from elir_edge.quantize.options import QuantizeOptions

__all__ = ["QuantizeOptions", "quantize_export"]


def __getattr__(name: str):  # the stage (torch, MCT) loads on first use, not when options are imported
    if name == "quantize_export":
        from elir_edge.quantize.stage import quantize_export

        return quantize_export
    raise AttributeError(name)
