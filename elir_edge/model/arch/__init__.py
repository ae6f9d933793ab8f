"""ELIR's modules with the reference implementation's state-dict keys (ELIR_SPEC)."""

from elir_edge.model.arch.elir import ArchConfig, Elir, build_elir, model_shapes, time_embedding

__all__ = ["ArchConfig", "Elir", "build_elir", "model_shapes", "time_embedding"]
