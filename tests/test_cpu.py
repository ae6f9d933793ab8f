"""The CPU side: features read from recorded /proc/cpuinfo lines, the verdict on int8, the conv roof on the
model's own shapes, OpenVINO beside ONNX Runtime, and the saturation flag on an int8 graph made to
compute wrongly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import plant_wrong_file
from onnx import numpy_helper

from elir_edge.bench import BenchOptions, run_bench
from elir_edge.cli import main
from elir_edge.runtime.cpu_roof import PAYS, conv_roof, conv_shapes, cpu_features, int8_verdict

# flag lines recorded on three machines of this workplace and one Arm server (trimmed to the relevant part)
AVX2 = """processor	: 0
model name	: AMD EPYC 7B12
flags		: fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm sse4a avx2 bmi1 bmi2 rdseed adx clflushopt sha_ni
"""
VNNI = """processor	: 0
model name	: AMD EPYC 9B14
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni avx512_bitalg gfni vaes
"""
AMX = """processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags		: fpu sse sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
ARM = """processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp sve i8mm bf16
CPU implementer	: 0x41
"""


@pytest.mark.parametrize("text, int8, has, lacks", [
    (AVX2, None, ["AVX2"], ["AVX-512", "AVX-512 VNNI"]),
    (VNNI, "AVX-512 VNNI", ["AVX2", "AVX-512", "AVX-512 VNNI"], ["AMX-INT8"]),
    (AMX, "AMX-INT8", ["AVX-512 VNNI", "AVX-VNNI", "AMX-INT8", "AMX"], []),
    (ARM, "i8mm", ["NEON", "dotprod", "i8mm", "SVE"], ["AVX2"]),
])
def test_cpu_features_from_recorded_cpuinfo(text, int8, has, lacks):
    f = cpu_features(text)
    assert f["int8_dot_product"] == int8
    assert set(has) <= set(f["features"]) and not set(lacks) & set(f["features"])
    assert f["isa"] == ("arm64" if text is ARM else "x86_64")


def test_int8_verdict_says_what_was_measured_and_what_the_cpu_has():
    no = int8_verdict(cpu_features(AVX2), 0.96, 0.31)
    assert no.startswith("int8 does not pay on this CPU: int8 convolutions measured at 0.96x")
    assert "0.31x the size" in no and "the CPU has no int8 dot-product instruction (no VNNI/AMX" in no
    yes = int8_verdict(cpu_features(VNNI), 1.95)
    assert yes.startswith("int8 pays on this CPU: int8 convolutions measured at 1.95x") and "the CPU has AVX-512 VNNI" in yes
    # measured gain without the instruction (AVX2-only EPYC: 1.27x): two facts, neither the other's reason
    both = int8_verdict(cpu_features(AVX2), 1.27)
    assert both.startswith("int8 pays on this CPU") and "no int8 dot-product instruction" in both
    assert "(no int8 dot-product" not in both.split(".")[0]
    odd = int8_verdict(cpu_features(AMX), 1.0)
    assert odd.startswith("int8 does not pay") and "the CPU has AMX-INT8" in odd


def test_conv_shapes_and_roof(tiny_quantized):
    """The shapes carrying most MACs, computed by hand for the tiny model: its encoder's 32->32 3x3 convs at
    full resolution (64 px) dominate."""
    model = onnx.load(str(tiny_quantized[0] / "model.onnx"))
    shapes = conv_shapes(model)
    assert shapes[0]["in"] == shapes[0]["out"] == 32 and shapes[0]["h"] == 64 and shapes[0]["stride"] == 1
    assert 0 < sum(s["share"] for s in shapes) <= 1 and shapes[0]["share"] >= shapes[-1]["share"]
    through_qdq = conv_shapes(onnx.load(str(tiny_quantized[0] / "model_int8.onnx")))[0]
    assert {k: v for k, v in through_qdq.items() if k != "share"} == {k: v for k, v in shapes[0].items() if k != "share"}
    roof = conv_roof(shapes[:1], threads=1, seconds=0.05)
    assert roof["fp32_gmac_s"] > 0 and roof["int8_gmac_s"] > 0 and roof["int8_vs_fp32"] > 0


def test_the_roof_is_measured_once_a_process_for_the_same_shapes_and_threads(tiny_quantized, tmp_path,
                                                                              monkeypatch):
    """quantize and then bench on one model in one process (the demo) report one measurement of the roof; other
    threads or another model's shapes are measured anew; a caller's changes to a result never reach the next."""
    import elir_edge.runtime.cpu_roof as cpu

    measured = []

    def fake(shapes, threads):
        measured.append((shapes, threads))
        return {"shapes": [dict(s) for s in shapes], "fp32_gmac_s": 10.0, "int8_gmac_s": 20.0 + len(measured),
                "int8_vs_fp32": 2.0}

    monkeypatch.setattr(cpu, "conv_roof", fake)
    cpu._ROOFS.clear()
    try:
        float_path, other = tiny_quantized[0] / "model.onnx", tmp_path / "other.onnx"
        first = cpu.measure_cpu(float_path, size_ratio=0.3)
        first["shapes"].clear()
        again = cpu.measure_cpu(float_path)
        assert len(measured) == 1 and again["int8_gmac_s"] == 21.0 and again["shapes"] == measured[0][0]
        assert measured[0] == (conv_shapes(onnx.load(str(float_path))), None)
        assert cpu.measure_cpu(float_path, threads=1)["int8_gmac_s"] == 22.0 and measured[1][1] == 1
        other.write_bytes(cpu._conv_graph({"in": 8, "out": 8, "h": 16, "w": 16, "stride": 1}, False))  # other convs
        cpu.measure_cpu(other)
        assert len(measured) == 3 and measured[2][0] != measured[0][0]
    finally:
        cpu._ROOFS.clear()  # no fake figure left for a later test of this process


def test_conv_roof_arithmetic_on_known_latencies(monkeypatch):
    """Sessions that take a known time on a fake clock: shape A (share 0.6) runs fp32 in 2 ms and int8 in 1 ms,
    shape B (share 0.2) 4 ms and 8 ms. MACs of each probe graph counted here from its Conv nodes; the roof is
    the rate at which the shares' MACs would run (time-weighted), worked out by hand. Caught: an arithmetic
    mean of the rates, the ratio inverted, MACs of one conv instead of the probe's whole stack."""
    from types import SimpleNamespace

    import elir_edge.runtime.cpu_roof as cpu

    now = [0.0]

    class Timed:
        def __init__(self, seconds):
            self.seconds = seconds

        def run(self, *_):
            now[0] += self.seconds

    shapes = [{"in": 8, "out": 8, "h": 16, "w": 16, "stride": 1, "share": 0.6},
              {"in": 16, "out": 16, "h": 8, "w": 8, "stride": 1, "share": 0.2}]
    cost = {(8, False): 0.002, (8, True): 0.001, (16, False): 0.004, (16, True): 0.008}  # (channels, int8): s
    real_graph = cpu._conv_graph
    monkeypatch.setattr(cpu, "_conv_graph", lambda s, int8: (s["in"], int8, real_graph(s, int8)))
    monkeypatch.setattr(cpu, "ort_session_from_bytes", lambda g, *a, **k: Timed(cost[g[:2]]))
    monkeypatch.setattr(cpu, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    roof = conv_roof(shapes, threads=1, seconds=0.05)

    def macs(s):  # every Conv of the probe graph: Cout * H * W * Cin * 3 * 3
        g = onnx.ModelProto.FromString(real_graph(s, False))
        return sum(1 for n in g.graph.node if n.op_type == "Conv") * s["in"] * s["in"] * 9 * s["h"] * s["w"]

    rate = {(s["in"], p): macs(s) / cost[(s["in"], p)] / 1e9 for s in shapes for p in (False, True)}
    want = {p: 0.8 / (0.6 / rate[(8, p)] + 0.2 / rate[(16, p)]) for p in (False, True)}
    assert roof["fp32_gmac_s"] == pytest.approx(want[False]) and roof["int8_gmac_s"] == pytest.approx(want[True])
    assert roof["int8_vs_fp32"] == pytest.approx(want[True] / want[False])
    assert [r["fp32_gmac_s"] for r in roof["shapes"]] == pytest.approx([rate[(8, False)], rate[(16, False)]])


def _saturated_copy(folder, dst):
    """The CPU form with its weight scales x4: what 16-bit saturation does to a graph, on any CPU."""
    shutil.copytree(folder, dst)
    m = onnx.load(str(dst / "model_int8_cpu.onnx"))
    inits = {i.name: i for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None and \
                inits[n.input[0]].data_type == onnx.TensorProto.INT8:
            s = inits[n.input[1]]
            s.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(s) * np.float32(4), s.name))
    plant_wrong_file(dst, "model_int8_cpu.onnx", m)
    return dst


def test_saturation_is_flagged_and_openvino_runs_beside_ort(tiny_quantized, tmp_path, capsys):
    pytest.importorskip("openvino")
    folder = _saturated_copy(tiny_quantized[0], tmp_path / "export")
    recorded = json.loads((folder / "quant_report.json").read_text())["int8_cpu_vs_float"]["psnr_db"]
    data = tiny_quantized[0].parent / "calib"
    assert main(["bench", "--engine", str(folder / "model.onnx"), "--engine", str(folder / "model_int8_cpu.onnx"),
                 "--engine", str(folder / "model_int8.onnx"), "--runtime", "ort", "--runtime", "openvino",
                 "--data", str(data), "--iterations", "2", "--duration", "0", "--warmup", "0", "--threads", "1",
                 "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "b.json").read_text())
    runners = [(row["label"].split("/")[-1], row["runner"]) for row in r["rows"]]
    assert runners == [(n, k) for n in ("model.onnx", "model_int8_cpu.onnx", "model_int8.onnx")
                       for k in ("ONNX Runtime CPU", "OpenVINO CPU")]
    ov_float = r["rows"][1]
    assert ov_float["vs_float"]["psnr"]["mean"]["value"] > 60  # OpenVINO computes the float graph alike
    flagged = [(row["label"].split("/")[-1], row["runner"]) for row in r["rows"] if row.get("flag")]
    # the planted file on both runtimes; and, where the CPU has no int8 dot-product instruction, OpenVINO's
    # 16-bit saturation of u8 x s8 products on the file with full 8-bit weights (measured on an AVX2-only EPYC)
    want = [("model_int8_cpu.onnx", "ONNX Runtime CPU"), ("model_int8_cpu.onnx", "OpenVINO CPU")]
    if not cpu_features()["int8_dot_product"]:
        want.append(("model_int8.onnx", "OpenVINO CPU"))
    assert flagged == want
    planted = [row for row in r["rows"] if row["label"].endswith("model_int8_cpu.onnx")]
    assert all(row["vs_float"]["psnr"]["mean"]["value"] < recorded - 3 for row in planted)
    assert all(not row["probe"]["computes_right"] for row in planted)
    assert out.count("FLAGGED") == len(want) and "model_int8_cpu.onnx wrongly on this machine" in out
    # the verdict follows the ratio measured in this very run, and names what this CPU has, read here
    roof = r["cpu_roof"]
    pays = "int8 pays on this CPU" if roof["int8_vs_fp32"] >= PAYS else "int8 does not pay on this CPU"
    have = cpu_features()["int8_dot_product"]
    assert "CPU roof: ONNX Runtime" in out and roof["verdict"].startswith(f"{pays}: int8 convolutions measured at "
                                                                          f"{roof['int8_vs_fp32']:.2f}x")
    assert (f"the CPU has {have}" if have else "the CPU has no int8 dot-product instruction") in roof["verdict"]
    assert all("roof" in row for row in r["rows"]) and r["cpu_roof"]["features"]["isa"]
    of = {row["label"].split("/")[-1]: row["roof"]["of"] for row in r["rows"]}
    assert of["model.onnx"] == "fp32" and of["model_int8_cpu.onnx"] == "int8"  # each row against its own precision


def test_restore_says_the_fp32_file_is_as_fast_without_vnni(tiny_quantized, tmp_path, capsys, monkeypatch):
    import elir_edge.runtime.cpu_roof as cpu

    monkeypatch.setattr(cpu, "cpu_features", lambda text=None: cpu_features(AVX2))
    data = tiny_quantized[0].parent / "calib"
    assert main(["restore", "-q", "--engine", str(tiny_quantized[0] / "model_int8_cpu.onnx"), str(data), "-o",
                 str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "no int8 dot-product instruction" in err and "model.onnx may be about as fast" in err


def test_openvino_missing_is_one_line(tiny_quantized, monkeypatch, capsys):
    import builtins

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda n, *a, **k: (_ for _ in ()).throw(ImportError(n))
                        if n == "openvino" else real(n, *a, **k))
    assert main(["bench", "--engine", str(tiny_quantized[0] / "model.onnx"), "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'elir-edge[openvino]'" in err[0]


def test_bench_without_roof(tiny_quantized):
    r = run_bench(BenchOptions(engines=[tiny_quantized[0] / "model.onnx"], iterations=1, duration=0, warmup=0,
                               cpu_roof=False))
    assert "cpu_roof" not in r and r["machine"]["cpu_features"]["isa"]
