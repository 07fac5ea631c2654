"""The layout's rules, checked on the source: one-way data flow, no import cycles, one
TransformerLens adapter, modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).parents[2]
FOLDERS = {"headgraph": "headgraph", "ingest": "headgraph.ingest",
           "queries": "headgraph.queries", "explorer": "headgraph.explorer"}  # fmt: skip


def modules() -> dict[str, Path]:
    """Every module of the package, by its dotted name as installed."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out[name] = path
    return out


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The headgraph modules a file imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_module_level_imports_have_no_cycles():
    known = modules()
    graph = nx.DiGraph()
    for name, path in known.items():
        graph.add_node(name)
        for target in imports(path, top_level_only=True) & set(known):
            if not name.startswith(target + ".") and target != name:  # a package's own parts
                graph.add_edge(name, target)
    assert graph.number_of_edges() > 50  # the check sees the real import graph
    assert list(nx.simple_cycles(graph)) == []


def test_nothing_outside_the_explorer_imports_it():
    for name, path in modules().items():
        if name.startswith("headgraph.explorer") or name == "headgraph.__main__":
            continue
        wrong = {
            i for i in imports(path, top_level_only=False) if i.startswith("headgraph.explorer")
        }
        assert not wrong, f"{name} imports {wrong}"


def test_queries_never_import_torch_or_the_model():
    for name, path in modules().items():
        if name.startswith("headgraph.queries"):
            found = imports(path, top_level_only=False)
            assert not {i for i in found if i.split(".")[0] in ("torch", "transformer_lens")}
            assert not {i for i in found if i.startswith("headgraph.ingest.model")}, name


def test_transformer_lens_is_imported_by_the_adapter_alone():
    users = {
        name
        for name, path in modules().items()
        if any(i.split(".")[0] == "transformer_lens" for i in imports(path, top_level_only=False))
    }
    assert users == {"headgraph.ingest.model.adapter"}


def test_modules_stay_readable():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert max(sizes.values()) <= 400, max(sizes.items(), key=lambda kv: kv[1])
