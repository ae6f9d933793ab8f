"""The package shows the pipeline: one package per stage, imports flowing one way, no import circle.

Read from the source with `ast` (every import, function-local ones too), so a new module joins the
check by existing.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import elir_edge

ROOT = Path(elir_edge.__file__).parent

# Lowest first. A module may import its own package and the packages of lower layers, nothing above.
LAYERS = [
    {"elir_edge", "elir_edge.errors"},
    {"elir_edge.common", "elir_edge.cluster"},  # cluster: Ray underneath --ray, knows no stage
    {"elir_edge.model"},
    {"elir_edge.runtime"},
    {"elir_edge.exporter"},
    {"elir_edge.quantize"},  # stage 2 stands below the engines it no longer builds
    {"elir_edge.engines"},
    {"elir_edge.bench", "elir_edge.restore"},
    {"elir_edge.demo"},
    {"elir_edge.train"},  # trains on the demo's photographs
    {"elir_edge.cli"},
]
# runtime backends stand side by side: none imports another
BACKENDS = {"elir_edge.runtime.ort", "elir_edge.runtime.pytorch", "elir_edge.runtime.tensorrt",
            "elir_edge.runtime.tensorrt_rtx", "elir_edge.runtime.openvino"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the elir_edge modules it imports (a `from pkg import name` of a submodule counts as it)."""
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for mod, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{mod}: relative import; write `from elir_edge.… import …`"
                base = node.module or ""
                if base.split(".")[0] == "elir_edge":
                    subs = {f"{base}.{a.name}" for a in node.names} & set(mods)
                    found |= subs or {base}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "elir_edge"}
        graph[mod] = found - {mod}
    return graph


def layer_of(mod: str) -> int:
    for i, layer in enumerate(LAYERS):
        for owner in sorted(layer, key=len, reverse=True):
            if mod == owner or (owner != "elir_edge" and mod.startswith(owner + ".")):
                return i
    if mod == "elir_edge":
        return 0
    raise AssertionError(f"{mod} belongs to no layer: add its package to LAYERS in {__file__}")


def package_of(mod: str) -> str:
    return ".".join(mod.split(".")[:2])


def test_every_module_sits_in_a_layer_and_imports_only_downwards():
    bad = []
    for mod, deps in imports().items():
        for dep in deps:
            if package_of(dep) != package_of(mod) and layer_of(dep) >= layer_of(mod) and dep != "elir_edge":
                bad.append(f"{mod} imports {dep}")
    assert not bad, "imports against the flow:\n" + "\n".join(sorted(bad))


def test_no_import_circle():
    graph = imports()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_runtime_backends_do_not_import_each_other():
    graph = imports()
    for mod in BACKENDS & set(graph):
        assert not graph[mod] & (BACKENDS - {mod}), f"{mod} imports another backend"


def test_the_checker_sees_a_planted_circle(tmp_path, monkeypatch):
    """The walk itself can fail: a planted upward import is reported."""
    pkg = tmp_path / "elir_edge"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "__init__.py").write_text("")
    (pkg / "model" / "a.py").write_text("from elir_edge.cli import main\n")
    (pkg / "cli.py").write_text("from elir_edge.model.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    try:
        test_every_module_sits_in_a_layer_and_imports_only_downwards()
    except AssertionError as e:
        assert "elir_edge.model.a imports elir_edge.cli" in str(e)
    else:
        raise AssertionError("an upward import went unnoticed")
    try:
        test_no_import_circle()
    except AssertionError as e:
        assert "import circle" in str(e)
    else:
        raise AssertionError("an import circle went unnoticed")


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        yield module_name(path), ast.parse(path.read_text())


def test_export_folder_file_names_are_spelled_in_one_module():
    """Every file name of the export folder is a constant of model/export_folder.py; elsewhere it is named
    through it (a name inside a longer help text or docstring is prose, not a spelling of the contract)."""
    from elir_edge.model import export_folder as ef

    names = {ef.MANIFEST, ef.FLOAT, ef.FP16, ef.WEIGHTS, ef.INT8, ef.INT8_FP16, ef.INT8_CPU, ef.QUANT_REPORT,
             ef.PROBE, ef.RTX_ENGINE}
    spelled = [f"{mod}:{node.lineno} {node.value!r}" for mod, tree in _sources() if mod != ef.__name__
               for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names]
    assert not spelled, "file names of the export folder outside model/export_folder.py:\n" + "\n".join(spelled)


def test_no_getattr_or_hasattr_on_a_runner():
    """What a runner offers is the Runner protocol's, not something probed for."""
    probes = [f"{mod}:{node.lineno} {ast.unparse(node)}" for mod, tree in _sources() for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr") and node.args and "runner" in ast.unparse(node.args[0]).lower()]
    assert not probes, "getattr/hasattr on a runner:\n" + "\n".join(probes)


def test_every_backend_subclasses_the_runner_protocol():
    """Each backend's runner class names Runner as its base (isinstance checks on live runners: test_bench,
    test_gpu_runtime), and assigns no attribute onto a runner from outside."""
    classes = {mod: [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith("Runner")]
               for mod, tree in _sources() if mod in BACKENDS | {"elir_edge.runtime.engine"}}
    for mod, found in classes.items():
        for cls in found:
            assert "Runner" in [ast.unparse(b) for b in cls.bases], f"{mod}.{cls.name} does not subclass Runner"
    assert sum(map(len, classes.values())) >= 4  # ONNX Runtime, OpenVINO, PyTorch, the engine runner
    patched = [f"{mod}:{node.lineno} {ast.unparse(t)}" for mod, tree in _sources() for node in ast.walk(tree)
               if isinstance(node, ast.Assign) for t in node.targets
               if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "runner"]
    assert not patched, "attributes patched onto a runner after construction:\n" + "\n".join(patched)


def test_functions_are_short_enough_to_read_at_once():
    """No function of elir_edge/ over 60 lines, unless its docstring says why (it names the reason with
    'long because')."""
    long = [f"{mod}.{node.name}: {node.end_lineno - node.lineno + 1} lines" for mod, tree in _sources()
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > 60 and "long because" not in (ast.get_docstring(node) or "")]
    assert not long, "functions over 60 lines:\n" + "\n".join(long)
