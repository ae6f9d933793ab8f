"""The build report as a readable table (the JSON is the manifest beside each engine)."""

from __future__ import annotations

from elir_edge.common.tables import human_bytes, table


def build_table(manifests: list[dict]) -> str:
    rows = [[m["engine"], m["builder"] + " " + m["builder_version"],
             ", ".join(f"SM{s}" for s in m["target_sms"]) if "target_sms" in m else m.get("gpu_name", ""),
             m["precision"], str(m["layers"]), human_bytes(m["bytes"]), f"{m['build_seconds']:.1f} s"]
            for m in manifests]
    notes = [f"{m['engine']}: {n}" for m in manifests for n in m.get("support", []) if "unverified" in n]
    return "\n".join([table(rows, header=["engine", "builder", "for", "precision", "layers", "size", "build time"]),
                      *notes])


def engine_line(e: dict) -> str:
    if not e["built"]:
        return f"not built: {e['reason']}"
    unverified = [n for n in e.get("support", []) if "unverified" in n]
    return (f"{e['engine']} ({e['builder']} {e['builder_version']}, {e['precision']}, for "
            f"{', '.join('SM' + s for s in e['target_sms'])}: {human_bytes(e['bytes'])}, built in {e['build_seconds']:.1f} s)"
            + "".join(f"; {n}" for n in unverified))
