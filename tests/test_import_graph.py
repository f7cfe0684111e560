"""The import graph of pipelines/ has no cycle, counting imports inside functions too.

The code imports lazily (inside functions) to keep ``doit list`` fast, and a lazy import is
exactly how a cycle hides: ``recipes`` imported ``recipe_cache`` inside ``load_zoo`` while
``recipe_cache`` imported ``recipes`` at the top, and ``runtimes`` <-> ``runtime_caffe`` the same
way; also ``build_state`` <-> ``report`` and ``tasks`` <-> the doit reporters. Each was broken by
moving the piece both used one level down or the piece that used both one level up
(``recipes.load`` under ``recipes.cache``; ``runtimes.base`` under every runner;
``build.finish`` above ``build.state`` and ``report.results``; ``build.run`` and
``build.layout`` under ``build.tasks`` and the reporters); this test keeps them broken.

An edge ``a -> b`` is any ``import``/``from ... import`` in module ``a`` (read with ``ast``, so
nothing is executed) naming module ``b`` of pipelines/; ``from pkg import sub`` names the
submodule. The runner scripts in ``runtimes/side_runners/`` run under other Pythons and are not
modules of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Cycles still to break, each as its set of modules (none left). The test fails on any other
# cycle, and on a listed one that no longer exists (then delete it here): the list only shrinks.
KNOWN_CYCLES: list[set[str]] = []


def _modules(package: str, root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if "side_runners" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(package: str, root: Path = REPO) -> dict[str, set[str]]:
    """``{module: {modules of package it imports anywhere in its source}}``."""
    modules = _modules(package, root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif base in modules:
                        edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(component: set[str], graph: dict[str, set[str]]) -> str:
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & component))}" for m in sorted(component))


def test_pipelines_has_no_new_import_cycle():
    graph = import_graph("pipelines")
    assert "pipelines.recipes.cache" in graph and "pipelines.runtimes.base" in graph
    new = [c for c in cycles(graph) if c not in KNOWN_CYCLES]
    assert not new, "import cycles in pipelines/: " + " | ".join(_describe(c, graph) for c in new)


def test_known_cycles_are_still_there():
    """A known cycle that got broken must leave KNOWN_CYCLES, or a new one could hide there."""
    found = cycles(import_graph("pipelines"))
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"no longer cycles, remove them from KNOWN_CYCLES: {gone}"


def test_converters_never_import_pipelines():
    for path in sorted((REPO / "converters").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad = [n for n in names if n.split(".")[0] == "pipelines"]
            assert not bad, f"{path.relative_to(REPO)}:{node.lineno} imports {bad[0]}"


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [{"a", "b"}]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
    ],
)
def test_cycle_finder_on_small_graphs(edges, expected):
    assert cycles(edges) == expected


def test_a_lazy_import_back_is_a_cycle(tmp_path):
    """The shape of the old recipes <-> recipe_cache cycle: one side imports lazily."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("from pkg.a import f\n")
    graph = import_graph("pkg", tmp_path)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert cycles(graph) == [{"pkg.a", "pkg.b"}]


def test_the_caffe_reader_never_imports_the_caffe_writer():
    """converters/caffe (Caffe -> ONNX) and converters/onnx2caffe (ONNX -> Caffe) share only
    the wire schema; the support table of both is written by converters/supported.py above."""
    for path in sorted((REPO / "converters" / "caffe").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            bad = [n for n in names if n.startswith("converters.onnx2caffe")]
            assert not bad, f"{path.relative_to(REPO)}:{node.lineno} imports {bad[0]}"
