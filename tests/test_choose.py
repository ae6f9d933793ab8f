"""An export folder given as the artifact: the int8 CPU file this machine computes right runs, said in one line."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import plant_wrong_scales

from elir_edge.errors import UserError
from elir_edge.model.export_folder import FLOAT, FOLDER_CHOICE, INT8_CPU, INT8_CPU_S8, INT8_CPU_W8
from elir_edge.runtime.choose import open_choice
from elir_edge.runtime.cpu_roof import cpu_features
from elir_edge.runtime.open import RunnerOptions, open_runner


@pytest.fixture
def folder(tiny_quantized, tmp_path):
    shutil.copytree(tiny_quantized[0], tmp_path / "export")
    return tmp_path / "export"


def _choose(path, runtime="ort"):
    with open_choice(path, lambda p: open_runner(p, RunnerOptions(runtime=runtime)), cpu_runtime=True) as c:
        return c.runner.name, c.why


def test_a_folder_runs_the_8_bit_weights_where_the_cpu_has_an_int8_dot_product(folder):
    name, why = _choose(folder)
    assert name in FOLDER_CHOICE and why.startswith(f"{folder}: runs {name} ")
    if cpu_features()["int8_dot_product"]:  # VNNI/AMX add u8 x s8 in 32 bits: nothing saturates
        assert name == INT8_CPU_W8 and "computes it right here" in why
    elif name == INT8_CPU:  # a runtime that saturates on 8-bit weights here: the line says so
        assert f"not {INT8_CPU_W8}" in why and "wrongly" in why


def test_a_folder_whose_8_bit_file_computes_wrongly_runs_the_7_bit_one_and_says_why(folder):
    """A runtime that saturates on 8-bit weights is what a CPU without VNNI does: the 8-bit file is made to
    compute wrongly (another graph under its name, its recorded figures kept)."""
    plant_wrong_scales(folder, INT8_CPU_W8)
    name, why = _choose(folder)
    assert name == INT8_CPU and f"not {INT8_CPU_W8}" in why and "wrongly" in why
    plant_wrong_scales(folder, INT8_CPU)
    name, why = _choose(folder)  # never the OpenVINO form, which ONNX Runtime runs slower than the float graph
    assert name == FLOAT and "no int8 CPU file computes right here" in why


def _right_here(folder, runtime: str, name: str) -> bool:
    """Whether `runtime` computes `name` right on this machine, as quantize measured it here (runtimes_here)."""
    return json.loads((folder / "quant_report.json").read_text())["runtimes_here"][runtime][name]["computes_right"]


def test_on_openvino_the_line_names_the_openvino_form_for_speed(folder, tiny_quantized, tmp_path):
    """The most exact file runs; the OpenVINO form (faster there, less exact) is named with its recorded PSNR, on
    OpenVINO only, where OpenVINO computed it right when quantized (not where its 8-bit weights saturate: CPUs
    without VNNI), and never chosen."""
    pytest.importorskip("openvino")
    recorded = json.loads((folder / "quant_report.json").read_text())["int8_cpu_s8_vs_float"]["psnr_db"]
    s8_right = _right_here(folder, "OpenVINO CPU", INT8_CPU_S8)
    first = INT8_CPU_W8 if _right_here(folder, "OpenVINO CPU", INT8_CPU_W8) else INT8_CPU
    name, why = _choose(folder, "openvino")
    named = f"; for speed on OpenVINO give {INT8_CPU_S8} (int8 without zero points at {recorded:.1f} dB vs float at " \
            "quantize)"
    assert name == first and why.endswith(named) == s8_right and ("for speed" in why) == s8_right
    assert INT8_CPU_S8 not in _choose(folder)[1]  # ONNX Runtime: not named
    other = shutil.copytree(tiny_quantized[0], tmp_path / "other")
    report = json.loads((other / "quant_report.json").read_text())
    report["runtimes_here"]["OpenVINO CPU"][INT8_CPU_S8]["computes_right"] = False  # as quantized without VNNI
    (other / "quant_report.json").write_text(json.dumps(report))
    name, why = _choose(other, "openvino")
    assert name == first and "for speed" not in why
    for name in (INT8_CPU_W8, INT8_CPU):
        plant_wrong_scales(folder, name)
    assert _choose(folder, "openvino")[0] == FLOAT


def test_an_old_folder_without_the_8_bit_file_says_so(folder):
    (folder / INT8_CPU_W8).unlink()
    name, why = _choose(folder)
    assert name == INT8_CPU and f"has no {INT8_CPU_W8}" in why


def test_a_folder_that_is_not_an_export_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(UserError, match="not an export folder"):
        _choose(tmp_path / "photos")


def test_restore_and_bench_take_a_folder(folder, tmp_path, capsys):
    from elir_edge.cli import main

    image = tmp_path / "in.png"
    from PIL import Image
    Image.new("RGB", (40, 30), (120, 60, 30)).save(image)
    assert main(["restore", "-q", str(folder), str(image), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    name, _ = _choose(folder)
    assert f"runs {name}" in out and (tmp_path / "out" / "in.png").is_file()
    assert main(["bench", str(folder / FLOAT), str(folder), "--iterations", "1", "--duration", "0", "--warmup", "0",
                 "--no-roof"]) == 0
    out = capsys.readouterr().out
    assert f"runs {name}" in out and f"{folder.name}/{name}" in out
