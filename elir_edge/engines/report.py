"""The build report as a readable table (the JSON is the manifest beside each engine)."""

from __future__ import annotations

from elir_edge.common.tables import human_bytes, table


def build_table(manifests: list[dict]) -> str:
    rows = [[m["engine"], m["builder"] + " " + m["builder_version"],
             ", ".join(f"SM{s}" for s in m["target_sms"]) if "target_sms" in m else m.get("gpu_name", ""),
             m["precision"], str(m["layers"]), human_bytes(m["bytes"]), f"{m['build_seconds']:.1f} s"]
            for m in manifests]
    return table(rows, header=["engine", "builder", "for", "precision", "layers", "size", "build time"])
