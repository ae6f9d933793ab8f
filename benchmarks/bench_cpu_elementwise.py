"""Does int8 between the convolutions pay on ONNX Runtime's CPU? (issue 30, item 1)

    .venv/bin/python benchmarks/bench_cpu_elementwise.py [--runs 30] [--json benchmarks/results/cpu_elementwise.json]

Exports and quantizes the bundled demo model (defaults) in a temporary folder, keeps MCT's own Q/DQ graph,
and writes CPU forms (uint8 zero point 128) from it that differ only in where activation Q/DQ stay:
  convs:           at conv inputs and outputs (what quantize ships: ONNX Runtime fuses QLinearConv)
  all:             every Q/DQ MCT placed (after each Add, Mul, Concat, Relu, norm ...), so ONNX Runtime may
                   run QLinearAdd / QLinearConcat between the convolutions
  all + sigmoid:   the same with a [0, 1] uint8 Q/DQ on each Sigmoid output (MCT fuses SiLU and places none),
                   so SiLU can run as QLinearSigmoid + QLinearMul
each with 7- and 8-bit weights. For each: PSNR against the float graph on the bundled held-out images (same
eps), the QLinear ops in the graph ONNX Runtime actually runs (optimized_model_filepath), and the median
latency, all files taking turns run by run in this one process (2 threads).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

import elir_edge.quantize.qdq_rewrite as rw
import elir_edge.quantize.stage as stage
from elir_edge.common.images import load_images
from elir_edge.common.metrics import psnr
from elir_edge.demo import CALIBRATION_DIR, CHECKPOINT, HELDOUT_DIR
from elir_edge.exporter.stage import ExportOptions, export_checkpoint
from elir_edge.model.eval_inputs import eval_inputs
from elir_edge.model.export_folder import ExportFolder


def mct_graph(work: Path) -> tuple[Path, onnx.ModelProto]:
    folder = work / "demo"
    export_checkpoint(CHECKPOINT, ExportOptions(output=folder, seed=0), quiet=True)
    real, seen = stage._mct_graph, []  # the Q/DQ graph quantize's rewrites start from, at the graph's size
    stage._mct_graph = lambda *a, **kw: seen.append(real(*a, **kw)) or seen[-1]
    try:
        stage.quantize_export(stage.QuantizeOptions(model=folder, calib=CALIBRATION_DIR), quiet=True)
    finally:
        stage._mct_graph = real
    return folder, seen[0]


def sigmoid_qdq(m: onnx.ModelProto) -> None:
    """A uint8 Q/DQ (scale 1/255, zero point 0: exactly [0, 1]) on every Sigmoid output."""
    g = m.graph
    _, consumers, _ = rw._maps(m)
    g.initializer.extend([numpy_helper.from_array(np.array(1 / 255, np.float32), "sigmoid_scale"),
                          numpy_helper.from_array(np.array(0, np.uint8), "sigmoid_zp")])
    nodes = []
    for n in g.node:
        nodes.append(n)
        if n.op_type == "Sigmoid":
            o = n.output[0]
            for u in consumers[o]:
                u.input[:] = [f"{o}_dq" if x == o else x for x in u.input]
            nodes += [helper.make_node("QuantizeLinear", [o, "sigmoid_scale", "sigmoid_zp"], [f"{o}_q"]),
                      helper.make_node("DequantizeLinear", [f"{o}_q", "sigmoid_scale", "sigmoid_zp"], [f"{o}_dq"])]
    del g.node[:]
    g.node.extend(nodes)


def variant(graph: onnx.ModelProto, where: str, bits: int) -> bytes:
    m = onnx.ModelProto()
    m.CopyFrom(graph)
    del m.graph.value_info[:]
    rw.constants_to_initializers(m)
    rw.fold_weight_quantizers(m, weight_bits=bits)
    if where == "convs":
        rw.prune_activation_qdq(m, keep_conv_outputs=True)
    rw.dedupe_initializers(m)
    rw.to_uint8_activations(m)
    if where == "all + sigmoid":
        sigmoid_qdq(m)
    return m.SerializeToString()


def session(model: bytes, work: Path, threads: int):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.log_severity_level = threads, 3
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")  # files take turns on the cores
    o.optimized_model_filepath = str(work / "optimized.onnx")
    sess = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(work / "optimized.onnx")).graph.node)
    return sess, {k: v for k, v in sorted(ops.items()) if k.startswith("QLinear") or k.endswith("Linear")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        folder, graph = mct_graph(work)
        s, ex = ExportFolder(folder).settings, ExportFolder(folder)
        es = eval_inputs(load_images(HELDOUT_DIR, "held-out folder"), s.task, s.height, s.width, ex.latent_channels, 0)
        feeds = [{"lq": es.lq[i:i + 1], "eps": es.eps[i:i + 1]} for i in range(len(es.lq))]
        rows = {"fp32": session((folder / "model.onnx").read_bytes(), work, args.threads)}
        ref = [rows["fp32"][0].run(["hq"], f)[0] for f in feeds]
        for where in ("convs", "all", "all + sigmoid"):
            for bits in (7, 8):
                rows[f"{where}, {bits}-bit weights"] = session(variant(graph, where, bits), work, args.threads)
        quality = {k: float(np.mean([psnr(sess.run(["hq"], f)[0], r) for f, r in zip(feeds, ref)]))
                   for k, (sess, _) in rows.items()}
        times = collections.defaultdict(list)
        for _ in range(args.runs):
            for k, (sess, _) in rows.items():
                t = time.perf_counter()
                sess.run(["hq"], feeds[0])
                times[k].append(time.perf_counter() - t)
    cpu = sorted(set(re.findall(r"avx512_vnni|avx2|amx\w*", Path("/proc/cpuinfo").read_text())))
    base = np.median(times["fp32"])
    result = {"cpu_flags": cpu, "runs": args.runs, "threads": args.threads, "rows": [
        {"file": k, "psnr_vs_fp32_db": None if k == "fp32" else quality[k], "median_ms": 1000 * np.median(times[k]),
         "speed_vs_fp32": base / np.median(times[k]), "ort_ops": ops} for k, (_, ops) in rows.items()]}
    print(f"CPU flags: {' '.join(cpu)}; {args.runs} runs each, taking turns, {args.threads} threads")
    for r in result["rows"]:
        db = "reference" if r["psnr_vs_fp32_db"] is None else f"{r['psnr_vs_fp32_db']:.2f} dB"
        print(f"| {r['file']} | {db} | {r['median_ms']:.1f} ms | {r['speed_vs_fp32']:.2f}x | "
              + ", ".join(f"{k} {v}" for k, v in r["ort_ops"].items()) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
