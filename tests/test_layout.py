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
    {"elir_edge.common"},
    {"elir_edge.model"},
    {"elir_edge.runtime"},
    {"elir_edge.exporter"},
    {"elir_edge.engines"},
    {"elir_edge.bench", "elir_edge.restore"},
    {"elir_edge.quantize"},
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
