"""Stage 1, export: checkpoint -> folded, unrolled, simplified ONNX, verified against PyTorch, written
atomically into an artifact folder (`model.onnx`, `weights.safetensors`, `manifest.json`).

    from elir_edge.exporter import ExportOptions, export_checkpoint
"""

from elir_edge.exporter.stage import ExportOptions, export_checkpoint

__all__ = ["ExportOptions", "export_checkpoint"]
