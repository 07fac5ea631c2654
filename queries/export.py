"""A run out of the store: its whole graph (JSON, CSV for ``neo4j-admin database import``), or
graphs other tools open (circuit-tracer's viewer, networkx node-link, GraphML: see
:mod:`headgraph.queries.graphs`).

What a run is: its ``Run`` and ``Model`` nodes, the model's ``Component`` and
``SingularVector`` nodes (with ``HAS_SV``) and labels, the run's ``Prompt``,
``Firing``, ``Site``, ``Prediction``, ``Partial``, ``Effect`` and ``SavedCircuit``
nodes, its ``SIGNAL`` and ``PREDICTS`` relationships and its ``CARRIES``
aggregates. Nodes are identified as ``Label:key``.

- **json**: ``{"run", "nodes": [{"id", "label", "properties"}], "relationships":
  [{"type", "start", "end", "properties"}]}``.
- **graphml**, **circuit-tracer**, **node-link**: :mod:`headgraph.queries.graphs`.
- **csv**: a folder in the layout ``neo4j-admin database import full`` reads:
  one file per node label (``key:ID(Label)``, typed headers such as
  ``layer:long`` and ``svs:long[]``, arrays joined by ``;``) and one per
  relationship type and start label (``:START_ID(Label)``, ``:END_ID(Label)``),
  with ``import.sh`` holding the command. A run too big for the embedded
  store's taste moves to Neo4j this way.

Files are written beside their target and renamed into place at the end, so
an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headgraph.queries.graphs import write_circuit_tracer, write_graphml, write_node_link
from headgraph.queries.selection import QueryError, resolve_run
from headgraph.queries.store import GraphStore
from headgraph.queries.store.schema import NODE, REL

FORMATS = ("graphml", "circuit-tracer", "node-link", "json", "csv")
CSV_TYPES = {"STRING": "string", "INT64": "long", "DOUBLE": "double", "BOOLEAN": "boolean"}
CSV_TYPES |= {"INT64[]": "long[]", "DOUBLE[]": "double[]", "STRING[]": "string[]"}
ARRAY_DELIMITER = "\x1f"  # the unit separator: no token holds it (";" can be one)

# Which nodes and relationships belong to a run: (type, start label, end label, WHERE).
NODE_SCOPE = {
    "Model": "n.key = $model",
    "Run": "n.key = $run",
    "Component": "n.model = $model",
    "SingularVector": "n.model = $model",
    "Prompt": "n.run = $run",
    "Site": "n.run = $run",
    "Firing": "n.run = $run",
    "Prediction": "n.run = $run",
    "Partial": "n.run = $run",
    "Effect": "n.run = $run",
    "Label": "n.model = $model",
    "SavedCircuit": "n.run = $run",
}
# absent from stores written before them
LATER_TABLES = ("Effect", "Label", "SavedCircuit", "Prediction", "Partial", "PREDICTS")
REL_SCOPE = (
    ("HAS_SV", "Component", "SingularVector", "a.model = $model"),
    ("CARRIES", "Component", "Component", "r.run = $run"),
    ("SIGNAL", "Firing", "Firing", "b.run = $run"),
    ("SIGNAL", "Site", "Firing", "b.run = $run"),
    ("PREDICTS", "Firing", "Prediction", "b.run = $run"),
    ("PREDICTS", "Site", "Prediction", "b.run = $run"),
)


@dataclass(frozen=True)
class RunGraph:
    """A run's nodes (label -> property rows) and relationships ((type, start, end) -> rows
    with ``start`` and ``end`` keys and the properties)."""

    run: str
    nodes: dict[str, list[dict[str, Any]]]
    relationships: dict[tuple[str, str, str], list[dict[str, Any]]]


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: ``path`` (a file, or a folder for CSV) and the counts."""

    run: str
    format: str
    path: Path
    nodes: int
    relationships: int


def read_run(store: GraphStore, run: str | None = None) -> RunGraph:
    """Every node and relationship of a run (see the module docstring).

    Raises:
        QueryError: no such run.
    """
    ref = resolve_run(store, run)
    params = {"run": ref.key, "model": ref.model}
    nodes = {}
    for label, where in NODE_SCOPE.items():
        columns = ", ".join(f"n.`{p}` AS `{p}`" for p, _ in NODE[label].properties)
        cypher = f"MATCH (n:{label}) WHERE {where} RETURN {columns}"
        if label in LATER_TABLES:  # none in a store written before they existed
            nodes[label] = store.query_if_present(cypher, params)
        else:
            nodes[label] = store.query(cypher, params)
    relationships = {}
    for rel, start, end, where in REL_SCOPE:
        columns = "".join(f", r.`{p}` AS `{p}`" for p, _ in REL[rel].properties)
        cypher = (
            f"MATCH (a:{start})-[r:{rel}]->(b:{end}) WHERE {where} "
            f"RETURN a.key AS `start`, b.key AS `end`{columns}"
        )
        read = store.query_if_present if rel in LATER_TABLES else store.query
        relationships[(rel, start, end)] = read(cypher, params)
    return RunGraph(ref.key, nodes, relationships)


def export_run(
    store: GraphStore,
    *,
    format: str,
    out: str | Path,
    run: str | None = None,
    include_untraced: bool = False,
) -> ExportSummary:
    """Write a run to ``out``: a file (``json``, ``node-link``) or a new folder (``graphml``,
    ``circuit-tracer``, ``csv``).

    Args:
        include_untraced: GraphML's per-prompt graphs keep the firings tracing never reached.

    Raises:
        QueryError: unknown format or run, or ``out`` exists already.
    """
    if format not in FORMATS:
        raise QueryError(f"format {format!r}: use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists():
        raise QueryError(f"{out} exists already: remove it or choose another --out")
    name = resolve_run(store, run).key
    counts: list[tuple[int, int]] = []
    if format in ("json", "csv"):
        graph = read_run(store, name)
        writer = {"json": _write_json, "csv": _write_csv}[format]
        write_staged(out, lambda path: writer(graph, path))
        counts.append(
            (sum(map(len, graph.nodes.values())), sum(map(len, graph.relationships.values())))
        )
    elif format == "graphml":
        write_staged(out, lambda path: counts.append(
            write_graphml(store, path, name, include_untraced=include_untraced)))  # fmt: skip
    elif format == "circuit-tracer":
        write_staged(out, lambda path: counts.append(write_circuit_tracer(store, path, name)))
    else:
        write_staged(out, lambda path: counts.append(write_node_link(store, path, name)))
    return ExportSummary(name, format, out, *counts[0])


def write_staged(out: Path, write) -> None:
    """Call ``write(path)`` for a file or folder named like ``out`` in a temporary folder
    beside it, then rename it into place: an interruption leaves nothing half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(staging / out.name)
        os.replace(staging / out.name, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def node_id(label: str, key: str) -> str:
    return f"{label}:{key}"


def _write_json(graph: RunGraph, path: Path) -> None:
    document = {
        "run": graph.run,
        "nodes": [
            {"id": node_id(label, row["key"]), "label": label, "properties": row}
            for label, rows in graph.nodes.items()
            for row in rows
        ],
        "relationships": [
            {
                "type": rel,
                "start": node_id(start, row["start"]),
                "end": node_id(end, row["end"]),
                "properties": {k: v for k, v in row.items() if k not in ("start", "end")},
            }
            for (rel, start, end), rows in graph.relationships.items()
            for row in rows
        ],
    }
    with open(path, "w") as f:
        json.dump(document, f)


def _write_csv(graph: RunGraph, folder: Path) -> None:
    folder.mkdir()
    nodes_args, rels_args = [], []
    for label, rows in graph.nodes.items():
        props = NODE[label].properties
        header = [f"key:ID({label})"] + [f"{p}:{CSV_TYPES[t]}" for p, t in props[1:]]
        name = f"nodes-{label}.csv"
        _csv(folder / name, header, ([_cell(row[p]) for p, _ in props] for row in rows))
        nodes_args.append(f"--nodes={label}={name}")
    for (rel, start, end), rows in graph.relationships.items():
        props = REL[rel].properties
        header = [f":START_ID({start})", f":END_ID({end})"]
        header += [f"{p}:{CSV_TYPES[t]}" for p, t in props]
        name = f"relationships-{rel}-{start}.csv"
        lines = ([row["start"], row["end"], *(_cell(row[p]) for p, _ in props)] for row in rows)
        _csv(folder / name, header, lines)
        rels_args.append(f"--relationships={rel}={name}")
    script = (
        "#!/bin/sh\n# Load this run into a new Neo4j database (stop the server first).\n"
        'cd "$(dirname "$0")"\n'
        "neo4j-admin database import full --multiline-fields=true "
        f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X} \\\n  "
        + " \\\n  ".join(nodes_args + rels_args)
        + ' \\\n  "${1:-neo4j}"\n'
    )
    (folder / "import.sh").write_text(script)
    (folder / "import.sh").chmod(0o755)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ARRAY_DELIMITER.join(_cell(v) for v in value)
    return str(value) if not isinstance(value, float) else repr(value)


def _csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
