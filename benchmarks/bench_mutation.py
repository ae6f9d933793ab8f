"""Mutation testing of the pure-logic modules with mutmut (issue 33): a benchmark, not CI (it is slow).

Each module is mutated on its own, in a scratch copy of the repository (mutmut works in ./mutants of its
working folder and reads its settings from pyproject.toml there), against the narrowest test set that
covers it: mutmut then runs, for each mutant, only the tests of that set that call the mutated function.

    PYTHONPATH=/path/to/mutmut-3.8 python benchmarks/bench_mutation.py --label before stats plan ...
    python benchmarks/bench_mutation.py --label after --tests after stats

mutmut is installed outside the project's environment (`pip install --target DIR mutmut==3.8.0`), so CI's
environment never holds it. Results: benchmarks/results/mutation_<stem>.json (one entry per label), each with
killed / survived / no tests / timeout counts and the surviving mutants' names and diffs; the score here is
killed / (mutants - equivalent), equivalents being listed by hand in EQUIVALENT with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# stem -> (module path, the existing tests that cover it (before), the tests after issue 33's additions)
MODULES: dict[str, tuple[str, list[str], list[str]]] = {}
NONE = ["tests/test_install.py::test_every_dependency_has_a_bounded_range"]  # reaches none of the modules


def module(stem: str, path: str, before: list[str], added: list[str]) -> None:
    MODULES[stem] = (path, before, [t for t in before if t not in NONE] + added)


NONE = ["tests/test_install.py::test_every_dependency_has_a_bounded_range"]  # reaches no listed module
BENCH = ["tests/test_bench_properties.py"]
RUNTIME = ["tests/test_runtime_properties.py"]
module("stats", "elir_edge/bench/stats.py",
       ["tests/test_bench.py::test_latency_summary_on_known_data",
        "tests/test_bench.py::test_bootstrap_interval_contains_the_truth_and_shrinks_with_n",
        "tests/test_bench.py::test_worst_five_percent_and_describe",
        "tests/test_independent.py::test_bootstrap_interval_covers_the_true_mean_at_its_level"], BENCH)
module("batching", "elir_edge/runtime/batching.py",
       ["tests/test_restore.py::test_in_batches_pads_a_static_batch_and_trims"], RUNTIME)
module("layer_precision", "elir_edge/runtime/layer_precision.py",
       ["tests/test_layer_precision.py::" + t for t in (
           "test_layers_are_counted_by_the_type_their_kernel_reads_in_every_schema",
           "test_an_engine_without_int8_convolutions_or_without_details_is_said_so",
           "test_a_dynamic_engine_is_inspected_with_its_bound_shape",
           "test_an_int8_graph_given_float_kernels_is_flagged_in_its_bench_row",
           "test_an_inspector_that_fails_costs_the_layer_counts_only")],
       ["tests/test_layer_precision.py::test_the_counts_and_their_summary_worked_out_by_hand",
        "tests/test_layer_precision.py::test_an_inspector_without_figures_says_why_word_for_word"])
module("compare", "elir_edge/runtime/compare.py",
       ["tests/test_bench.py::test_drift_math_against_hand_computed_values"], RUNTIME)
module("eval_inputs", "elir_edge/model/eval_inputs.py",
       ["tests/test_quantize.py::test_calibration_holds_the_tasks_inputs_and_the_same_eps_as_bench"],
       ["tests/test_model_properties.py",
        "tests/test_bench_properties.py::test_an_items_inputs_are_eval_inputs_and_paired_inputs_image_i"])
module("export_folder", "elir_edge/model/export_folder.py", ["tests/test_bench.py::test_newest_export_is_found"],
       ["tests/test_export.py::" + t for t in (
           "test_an_export_folders_fields_are_read_as_numbers",
           "test_a_folder_that_is_not_an_export_is_refused_in_one_line_naming_the_fix",
           "test_the_recorded_hash_is_the_manifests_for_export_files_and_the_reports_for_int8_files",
           "test_a_damaged_quant_report_is_refused_and_stale_files_are_listed",
           "test_the_newest_export_is_the_last_written_manifest")])
# plan and quality: only the CLI and Ray end-to-end tests reach them (15-45 s a run each): none is fast, so
# "before" is measured with a test that reaches neither (every mutant: "no tests")
module("plan", "elir_edge/restore/plan.py", NONE,
       ["tests/test_restore.py::" + t for t in (
           "test_inputs_are_files_as_given_then_each_folders_images_sorted",
           "test_each_job_is_its_input_its_size_and_a_free_output_name",
           "test_an_output_never_replaces_an_input_or_a_users_file_but_replaces_its_own",
           "test_resume_keeps_an_output_only_if_it_is_this_inputs_result_with_these_settings")])
module("quality", "elir_edge/bench/quality.py", NONE, BENCH)

# the second eight (issue 33: "as time allows")
TILES = ["tests/test_restore.py::" + t for t in (
    "test_origins_cover_the_image_aligned_to_8", "test_single_tile_reproduces_the_whole_image_result",
    "test_no_seams_on_constant_and_gradient", "test_blending_is_smooth_where_tiles_disagree")]
module("tiling", "elir_edge/restore/tiling.py",
       TILES + ["tests/test_independent.py::test_every_tile_takes_its_slice_of_one_noise_field"],
       ["tests/test_restore_properties.py"])
module("images", "elir_edge/common/images.py",
       ["tests/test_independent.py::test_uint8_round_trip_is_exact_and_rounds_to_nearest",
        "tests/test_quantize.py::test_sixteen_bit_and_alpha_are_converted"], ["tests/test_common_properties.py"])
module("metrics", "elir_edge/common/metrics.py",
       ["tests/test_bench.py::test_drift_math_against_hand_computed_values",
        "tests/test_independent.py::test_ssim_agrees_with_scikit_image_at_data_range_one"],
       ["tests/test_common_properties.py"])
module("probe", "elir_edge/runtime/probe.py", NONE, RUNTIME)  # before: only the quantized-fixture tests reach it
module("fold", "elir_edge/model/fold.py", ["tests/test_fold.py::test_fold_pair_equals_conv_then_1x1",
                                           "tests/test_fold.py::test_collapsed_model_matches_overparameterized"],
       ["tests/test_fold.py::test_collapse_folds_exactly_the_1x1_pairs_of_fmir_and_mmse_and_flattens_the_keys"])
module("unroll", "elir_edge/model/unroll.py", ["tests/test_unroll.py"], [])
# ray_data: the tests of test_ray.py that start no cluster and quantize nothing (the others cost 15-45 s a test, a
# cluster start per mutant): a lower bound on what the whole suite kills
module("ray_data", "elir_edge/cluster/ray_data.py",
       ["tests/test_ray.py::" + t for t in (
           "test_ray_alone_starts_a_fresh_ray_here_and_auto_joins", "test_a_ray_version_mismatch_is_named_as_such",
           "test_a_node_that_cannot_see_the_output_folder_is_named",
           "test_blocks_hold_a_fixed_few_items_whatever_the_archive",
           "test_an_error_of_one_item_on_a_worker_is_its_failed_row", "test_a_run_past_the_policy_stops_in_one_line")],
       ["tests/test_ray_policy.py", "tests/test_ray_nodes.py"])
# fid's after: tests/test_fid.py alone (the earlier tests build a random Inception network, ~30 s a mutant): a
# lower bound on what the whole suite kills. Its before ran on c275366, whose test_bench.py also had
# test_fid_unavailable_without_weights and test_fid_weights_that_need_code_are_refused (now in test_fid.py)
MODULES["fid"] = ("elir_edge/bench/fid.py",
                  ["tests/test_bench.py::test_fid_and_kid_computed_end_to_end",
                   "tests/test_bench_properties.py::test_a_scored_rows_features_are_truth_reference_then_each_artifact"],
                  ["tests/test_fid.py"])


# stem -> {mutant name: why it changes nothing a user sees}; filled in after reading each survivor
F64 = ("the product passes Python floats (or float64 arrays) here, which np.asarray makes float64 without being "
       "told: the same numbers")
DEFAULT_SEED = "the product always passes the seed (quality._described, describe): the default is never used"
NO_TYPE = ("a missing field read as 'XXXX' or 'none' instead of '': neither names a non-compute layer, a "
           "convolution, a data type or '/Conv', so every layer counts the same")
EQUIVALENT: dict[str, dict[str, str]] = {
    "stats": {
        "elir_edge.bench.stats.x_bootstrap_ci__mutmut_15": "rng.integers(n) draws from [0, n) like rng.integers(0, n), "
                                                           "the same stream",
        "elir_edge.bench.stats.x_bootstrap_ci__mutmut_3": DEFAULT_SEED,
        "elir_edge.bench.stats.x_describe__mutmut_1": DEFAULT_SEED,
        **{f"elir_edge.bench.stats.x_{f}__mutmut_{n}": F64 for f, n in (
            ("bootstrap_ci", 6), ("bootstrap_ci", 8), ("describe", 4), ("describe", 6), ("latency_summary", 5),
            ("latency_summary", 7), ("worst_fraction_mean", 5), ("worst_fraction_mean", 7))}},
    "batching": {"elir_edge.runtime.batching.x__pad__mutmut_1": "a full chunk concatenated with zero repeats is the "
                                                                 "same array (a copy instead of itself)"},
    "layer_precision": {
        **{f"elir_edge.runtime.layer_precision.x__is_compute__mutmut_{n}": NO_TYPE for n in (5, 7, 11)},
        **{f"elir_edge.runtime.layer_precision.x__is_convolution__mutmut_{n}": NO_TYPE
           for n in (4, 6, 10, 12, 14, 18, 28, 30, 34)},
        "elir_edge.runtime.layer_precision.x_tensor_type__mutmut_18": NO_TYPE,
        **{f"elir_edge.runtime.layer_precision.x_read_inspector__mutmut_{n}": "a JSON without 'Layers' read as None "
           "instead of []: both are empty, the same note" for n in (3, 5)}},
    "quality": {"elir_edge.bench.quality.x_aggregate__mutmut_71": "numpy reads any negative size in reshape as "
                                                                   "'the rest': -2 gives what -1 gives"},
    "tiling": {
        "elir_edge.restore.tiling.x_origins__mutmut_1": "length == tile: range(0, 0) is empty and the last start is 0, "
                                                        "so [0] either way",
        **{f"elir_edge.restore.tiling.x_ramp__mutmut_{n}": "np.ones is float64 unless told otherwise" for n in (3, 5)},
        **{f"elir_edge.restore.tiling.x_restore_tiled__mutmut_{n}": "the product always passes seed and batch "
           "(restore/image.py): the defaults are never used" for n in (1, 2)},
        **{f"elir_edge.restore.tiling.x_restore_tiled__mutmut_{n}": "more padding than needed: the rows and columns "
           "the tiles read are the same reflection (or edge) of the image" for n in (51, 53)},
        **{f"elir_edge.restore.tiling.x_origins__mutmut_{n}": "length > tile here, so starts = range(0, length - tile, "
           "step) is never empty and its last element is below length - tile <= last: the last start is always "
           "appended" for n in (29, 32, 33)},
        **{f"elir_edge.restore.tiling.x_restore_tiled__mutmut_{n}": "tile origins are multiples of 8: y > 1 (x > 1) "
           "holds exactly when y > 0 (x > 0)" for n in (118, 131)},
        **{f"elir_edge.restore.tiling.x_restore_tiled__mutmut_{n}": "np.zeros is float64 unless told otherwise"
           for n in (67, 69, 73, 75)},
        "elir_edge.restore.tiling.x_restore_whole__mutmut_1": "the product always passes the seed (restore/image.py)"},
    "metrics": {
        **{f"elir_edge.common.metrics.x_psnr__mutmut_{n}": "one operand left in its own dtype: numpy promotes it to "
           "the other's float64 before subtracting, the same numbers" for n in (8, 10, 12, 14)},
        "elir_edge.common.metrics.x_psnr__mutmut_20": "float('INF') is float('inf')",
        **{f"elir_edge.common.metrics.x_ssim__mutmut_{n}": "the product's images are float32 already (graph outputs, "
           "to_chw): as_tensor keeps float32 without being told" for n in (9, 11, 25, 27)}},
    "images": {
        **{f"elir_edge.common.images.x_read_rgb__mutmut_{n}": "Pillow never opens a file in mode I;16L (a "
           "little-endian 16-bit TIFF reopens as I;16, PNG cannot hold it): the mode name is never compared"
           for n in (32, 33)},
        **{f"elir_edge.common.images.x_fit__mutmut_{n}": "ImageOps.fit resamples bicubically unless told otherwise"
           for n in (7, 10)},
        **{f"elir_edge.common.images.x_read_rgb__mutmut_{n}": "an RGB image's array is uint8 without being told"
           for n in (106, 108)},
        **{f"elir_edge.common.images.x_read_rgb__mutmut_{n}": "an integer image divided by a float peak is float64 "
           "either way" for n in (38, 40)},
        **{f"elir_edge.common.images.x_read_rgb__mutmut_{n}": "values / peak * 255 + 0.5 lie in [0.5, 255.5] (no "
           "value above its peak, none below 0): every clip bound given leaves them as they are"
           for n in (55, 56, 58, 65)},
        **{f"elir_edge.common.images.x_read_rgb__mutmut_{n}": "Pillow clamps a fill of 256 to 255: the canvas is the "
           "same white (the LA test's transparent pixel comes out 255)" for n in (96, 97, 98, 99)},
        "elir_edge.common.images.x_save_png__mutmut_27": "Pillow reads the format name case-insensitively"},
    "unroll": {f"elir_edge.model.unroll.x__conv_sharing_weight__mutmut_{n}": "whether a step's bias asks for "
               "gradients: the unrolled model is only run under no_grad (export, MCT's streamed statistics) or read as "
               "constants (MCT's graph, GPTQ trains its own copy); its shared weights ask for them either way"
               for n in (17, 18)},
    "ray_data": {
        **{f"elir_edge.cluster.ray_data.x_{f}__mutmut_{n}": "a block's size is BLOCK (16) or 1, nothing between: "
           "`size > 1` and `size > 2` choose alike" for f, n in (("_dataset", 34), ("_map", 48))},
        "elir_edge.cluster.ray_data.x__map__mutmut_8": "warnings.filterwarnings matches its message ignoring case "
                                                       "(re.I): the same filter",
        **{f"elir_edge.cluster.ray_data.x_map_actors__mutmut_{n}": "Ray Data reads enable_progress_bars and "
           "print_on_execution_start by truth value (progress_bar.py, streaming_executor.py): None is False there"
           for n in (2, 4)},
        "elir_edge.cluster.ray_data.x_check_nodes__mutmut_1": "how long a cold node is given to answer, 180 or 181 s: "
                                                               "no output differs (a test cuts it to 0.5 s)",
        "elir_edge.cluster.ray_data.x_check_nodes__mutmut_6": "Ray 2.60's ray.nodes() gives each node both 'Alive' and "
                                                              "'alive' (the same value)",
        "elir_edge.cluster.ray_data.x_check_nodes__mutmut_47": "Ray takes soft=None as soft=False: the check of a node "
                                                               "that is gone still fails as unschedulable (tested)",
        "elir_edge.cluster.ray_data.x__sees__mutmut_6": "an unreadable marker read as '' instead of None: the token is "
                                                        "32 hex digits, so neither equals it and the line is the same",
        "elir_edge.cluster.ray_data.xǁFleetǁactors__mutmut_25": "int(c / n) and int(c // n) floor alike for the "
                                                               "non-negative resources Ray reports",
        **{f"elir_edge.cluster.ray_data.xǁFleetǁactors__mutmut_{n}": "a usable node passed _fits, so it reports CPU: "
           "the default of .get('CPU', ...) is never read" for n in (27, 29, 35)},
        **{f"elir_edge.cluster.ray_data.xǁShardedǁmissing__mutmut_{n}": "made holds a shard exactly when a row of it "
           "came back, so the default is only compared with a count of 0, which -1, -2, +1 and None all differ from"
           for n in (14, 16, 19, 20)}},
    "fid": {**{f"elir_edge.bench.fid.x__uint8__mutmut_{n}": "the images features() is given are float32 already "
               "(read_rgb, the runners' outputs): np.asarray keeps them float32 without being told" for n in (12, 14)},
            **{f"elir_edge.bench.fid.x_inception__mutmut_{n}": "torch-fidelity stores the extractor's name for its "
               "own registry (get_name); torchmetrics' FID/KID and elir-edge never read it" for n in (52, 53)},
            "elir_edge.bench.fid.x_fid_kid_of__mutmut_1": "the product always passes the seed (bench/quality.py)",
            "elir_edge.bench.fid.x_fid_kid_of__mutmut_25": "torchmetrics branches on `if real`: None is false like "
                                                          "False"},
    "fold": {"elir_edge.model.fold.x_collapse_parts__mutmut_13": "conv kernels are square: shape[-2] is 1 exactly "
                                                                  "when shape[-1] is",
             "elir_edge.model.fold.x_fold_pair__mutmut_12": "einsum reads upper-case subscripts like lower-case ones"},
    "export_folder": {f"elir_edge.model.export_folder.xǁExportFolderǁrecorded_psnr__mutmut_{n}": "the lookup it "
                      "lets through with no key or no report fails with the KeyError/TypeError the except turns into "
                      "None: the same None" for n in (4, 8)},
}


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted(set(re.findall(r"\b(avx512_vnni|avx2|amx[a-z_]*)\b", text)))


def _scratch(stem: str, path: str, tests: list[str], work: Path) -> Path:
    """A copy of the package, tests and pyproject (with this module's mutmut settings) to run mutmut in."""
    d = work / stem
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copytree(ROOT / "elir_edge", d / "elir_edge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", d / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("README.md", "requirements.lock"):
        shutil.copy2(ROOT / name, d / name)
    files = sorted({t.split("::")[0] for t in tests})
    conf = ("\n[tool.mutmut]\n"
            'source_paths = ["elir_edge"]\n'
            f"only_mutate = [{json.dumps(path)}]\n"
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
            'process_isolation = "forkserver"\n'
            "use_git_change_detection = false\n")
    (d / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + conf)
    assert all((d / f).is_file() for f in files), files
    return d


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and Path(p).resolve() != ROOT)  # the mutated copy, never this tree
    return env


def _mutmut(d: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())",
                           *args], cwd=d, env=_env(), capture_output=True, text=True, timeout=timeout)


DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
print(json.dumps({k: get_diff_for_mutant(k) for k in sys.argv[1:]}))
"""


def _mutmut_py(d: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=d, env=_env(), capture_output=True, text=True,
                          check=True)


def run_module(stem: str, label: str, tests_kind: str, work: Path, max_children: int, collect: bool = False) -> dict:
    """collect: read what a run left in the scratch folder (one stopped part way: its unchecked mutants stay
    "not checked"), running nothing."""
    path, before, after = MODULES[stem]
    tests = before if tests_kind == "before" else after
    d = work / stem if collect else _scratch(stem, path, tests, work)
    t0 = time.perf_counter()
    run = subprocess.CompletedProcess([], 0) if collect else _mutmut(d, "run", "--max-children", str(max_children))
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
    meta = json.loads((d / "mutants" / (path + ".meta")).read_text())
    from mutmut.stats import status_by_exit_code

    statuses = {k: status_by_exit_code[v] for k, v in sorted(meta["exit_code_by_key"].items())}
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    alive = sorted(k for k, s in statuses.items() if s != "killed")
    diffs = json.loads(_mutmut_py(d, DIFFS, *alive).stdout) if alive else {}
    return {"module": path, "label": label, "tests": tests, "mutants": len(statuses), "counts": counts,
            "killed": counts.get("killed", 0),
            "not_killed": {k: statuses[k] for k in alive}, "diffs": diffs, "wall_s": round(wall, 1),
            "tool": "mutmut 3.8.0", "python": platform.python_version(), "cpu_flags": _cpu_flags(),
            "command": f"mutmut run --max-children {max_children} (settings: benchmarks/bench_mutation.py "
                       f"_scratch, only_mutate={path}, tests={tests_kind})",
            "returncode": run.returncode, **({"collected_from_a_stopped_run": True} if collect else {})}


def scored(stem: str, res: dict) -> dict:
    """The score: (killed + timeout) / (mutants - equivalent), the equivalents being mutants not killed that
    EQUIVALENT lists; a timeout is a mutant whose tests never finished (an endless loop: detected, as
    Stryker and cosmic-ray count it). score_killed_only leaves timeouts out of the detected ones."""
    equivalent = {k: why for k, why in EQUIVALENT.get(stem, {}).items() if k in res["not_killed"]}
    denominator = res["mutants"] - len(equivalent)
    timeout = res["counts"].get("timeout", 0)
    return {**res, "equivalent": equivalent, "timeout": timeout,
            "score": round((res["killed"] + timeout) / denominator, 4) if denominator else None,
            "score_killed_only": round(res["killed"] / denominator, 4) if denominator else None}


def table(stems: list[str]) -> str:
    rows = ["| module | mutants | killed before | score before | killed after | timeout after | equivalent | "
            "left alive after | score after |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for stem in stems:
        out = RESULTS / f"mutation_{stem}.json"
        if not out.exists():
            continue
        data = json.loads(out.read_text())
        b, a = data.get("before"), data.get("after")
        if not (a or b):
            continue

        def pct(r):
            return "-" if r is None or r["score"] is None else f"{100 * r['score']:.1f} %"

        left = (len(a["not_killed"]) - len(a["equivalent"]) - a["timeout"]) if a else "-"
        rows.append(f"| {MODULES[stem][0].removeprefix('elir_edge/')} | {(a or b)['mutants']} | "
                    f"{b['killed'] if b else '-'} | {pct(b)} | {a['killed'] if a else '-'} | {a['timeout'] if a else '-'} | "
                    f"{len(a['equivalent']) if a else '-'} | {left} | {pct(a)} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", help=f"module stems (default: all): {', '.join(MODULES)}")
    ap.add_argument("--label", default="before")
    ap.add_argument("--tests", choices=("before", "after"), default="before")
    ap.add_argument("--work", type=Path, default=Path("/tmp/elir-mutmut"))
    ap.add_argument("--max-children", type=int, default=1)
    ap.add_argument("--rescore", action="store_true", help="recompute the scores of the results kept (after "
                                                           "EQUIVALENT changed), running nothing")
    ap.add_argument("--collect", action="store_true", help="read the results a run left in --work, running nothing")
    ap.add_argument("--table", action="store_true", help="print the kept results as a markdown table")
    a = ap.parse_args()
    if a.table:
        print(table(a.modules or list(MODULES)))
        return
    for stem in a.modules or list(MODULES):
        out = RESULTS / f"mutation_{stem}.json"
        data = json.loads(out.read_text()) if out.exists() else {}
        if a.rescore:
            data = {label: scored(stem, r) for label, r in data.items()}
            out.write_text(json.dumps(data, indent=1) + "\n")
            print(f"{stem:16s} " + "  ".join(f"{label} {r['score']}" for label, r in data.items()))
            continue
        res = scored(stem, run_module(stem, a.label, a.tests, a.work, a.max_children, a.collect))
        data[a.label] = res
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"{stem:16s} {a.label:7s} mutants {res['mutants']:4d}  {res['counts']}  score {res['score']}  "
              f"({res['wall_s']} s)")


if __name__ == "__main__":
    main()
