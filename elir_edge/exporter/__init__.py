"""Stage 1, export: checkpoint -> folded, unrolled, simplified ONNX, verified against PyTorch, written
atomically into an artifact folder (`model.onnx`, `weights.safetensors`, `manifest.json`).

    from elir_edge.exporter import ExportOptions, export_checkpoint
"""

from elir_edge.exporter.options import ExportOptions

__all__ = ["ExportOptions", "export_checkpoint"]


def __getattr__(name: str):  # the stage (torch, onnx) loads on first use, not when options are imported
    if name == "export_checkpoint":
        from elir_edge.exporter.stage import export_checkpoint

        return export_checkpoint
    raise AttributeError(name)
