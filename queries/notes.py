"""People's notes, kept in the store beside the graph: labels and saved circuits.

- A **label** names what a component, a singular vector or an edge of a model
  does: ``1.0`` "name mover", ``1.0:0`` "reads names", ``0.2-1.0:query`` "S
  inhibition". One label per target and model. Labelling again replaces the text
  and records who and when. Labels belong to the model, so every run of it shows
  them, and every export carries them.
- A **saved circuit** is a named set of a run's edges (``UP->HEAD:SIDE``), e.g.
  the edges of the routes ``headgraph paths`` found, with a note, who and when.

Both are nodes (``Label``, ``SavedCircuit``), queryable in Cypher (see
docs/schema.md). Stores written before they existed simply have none.
"""

from __future__ import annotations

import getpass
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from headgraph.errors import InputError, QueryError
from headgraph.names import EDGE_SIDES, parse_edge
from headgraph.queries.selection import RunRef, resolve_run
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class Label:
    """A person's name for a component (``1.0``), singular vector (``1.0:0``) or edge."""

    target: str
    kind: str  # component, singular_vector or edge
    text: str
    author: str
    created: str
    model: str


@dataclass(frozen=True)
class SavedCircuit:
    """A named set of a run's edges."""

    name: str
    run: str
    edges: tuple[str, ...]
    note: str
    author: str
    created: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _author(author: str | None) -> str:
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container)
        return "unknown"


SVS = "MATCH (v:SingularVector) WHERE v.model = $m AND v.head_name = $h RETURN v.`index` AS k"


def label_target(store: GraphStore, ref: RunRef, target: str) -> tuple[str, str]:
    """``(kind, canonical target)`` of what a label names, checked against the run's model.

    Raises:
        QueryError: not a component, singular vector or edge of the model.
    """
    text = target.strip()
    if re.search(rf"-.*:({'|'.join(EDGE_SIDES)})$", text):
        try:
            edge = parse_edge(text)
        except InputError as error:
            raise QueryError(str(error)) from None
        return "edge", f"{ref.component(edge.upstream)}->{ref.head(edge.head)}:{edge.side}"
    head, sep, index = text.rpartition(":")
    if sep and index.isdigit():
        name = ref.head(head)
        rank = len(store.query(SVS, {"m": ref.model, "h": name}))  # always a table
        return "singular_vector", ref.singular_vector(text, max(rank, 1))[0] + f":{index}"
    return "component", ref.component(text)


def set_label(
    store: GraphStore, *, target: str, text: str, run: str | None = None,
    author: str | None = None,
) -> Label:  # fmt: skip
    """Label a target of the run's model (replacing its label, if any).

    Raises:
        QueryError: an unknown target, or an empty text.
    """
    if not text.strip():
        raise QueryError("a label needs a text, e.g. headgraph label 1.0 'name mover'")
    ref = resolve_run(store, run)
    kind, name = label_target(store, ref, target)
    label = Label(name, kind, text.strip(), _author(author), _now(), ref.model)
    key = f"{ref.model}|{name}"
    row = {"key": key, "model": ref.model, "target": name, "kind": kind, "text": label.text,
           "author": label.author, "created": label.created}  # fmt: skip
    store.write(
        {"Label": {k: [v] for k, v in row.items()}},
        delete=[("MATCH (n:Label) WHERE n.key = $key DELETE n", {"key": key})],
    )
    return label


def remove_label(store: GraphStore, *, target: str, run: str | None = None) -> bool:
    """Remove a target's label; whether there was one."""
    ref = resolve_run(store, run)
    _, name = label_target(store, ref, target)
    key = f"{ref.model}|{name}"
    found = bool(
        store.query_if_present("MATCH (n:Label) WHERE n.key = $key RETURN n.key AS k", {"key": key})
    )
    store.write({}, delete=[("MATCH (n:Label) WHERE n.key = $key DELETE n", {"key": key})])
    return found


LABELS = (
    "MATCH (n:Label) WHERE n.model = $model RETURN n.target AS target, n.kind AS kind, "
    "n.text AS text, n.author AS author, n.created AS created, n.model AS model"
)


def labels(store: GraphStore, *, run: str | None = None) -> list[Label]:
    """Every label on the run's model, by target."""
    ref = resolve_run(store, run)
    rows = store.query_if_present(LABELS, {"model": ref.model})
    return sorted((Label(**r) for r in rows), key=lambda label: label.target)


def label_texts(store: GraphStore, model: str) -> dict[str, str]:
    """``target -> text`` for a model (for exports and pictures)."""
    return {r["target"]: r["text"] for r in store.query_if_present(LABELS, {"model": model})}


def save_circuit(
    store: GraphStore, *, name: str, edges: list[str], run: str | None = None, note: str = "",
    author: str | None = None,
) -> SavedCircuit:  # fmt: skip
    """Save a named set of the run's edges (replacing a circuit of that name).

    Raises:
        QueryError: no name or no edges, or an edge the run's circuit does not have.
    """
    if not name.strip() or "|" in name:
        raise QueryError("a saved circuit needs a name without '|'")
    ref = resolve_run(store, run)
    chosen = []
    for text in edges:
        kind, edge = label_target(store, ref, text)
        if kind != "edge":
            raise QueryError(f"{text!r} is not an edge: write UP-HEAD:SIDE, e.g. 0.2-1.0:query")
        chosen.append(edge)
    if not chosen:
        raise QueryError("a saved circuit needs at least one edge")
    known = {f"{r['up']}->{r['down']}:{r['side']}" for r in store.query(
        "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run "
        "RETURN a.name AS up, b.name AS down, c.side AS side", {"run": ref.key})}  # fmt: skip
    missing = [e for e in chosen if e not in known]
    if missing:
        raise QueryError(f"run {ref.key} has no edge {', '.join(missing)}")
    saved = SavedCircuit(name.strip(), ref.key, tuple(dict.fromkeys(chosen)), note,
                         _author(author), _now())  # fmt: skip
    key = f"{ref.key}|{saved.name}"
    row = {"key": key, "run": ref.key, "name": saved.name, "edges": list(saved.edges),
           "note": note, "author": saved.author, "created": saved.created}  # fmt: skip
    store.write(
        {"SavedCircuit": {k: [v] for k, v in row.items()}},
        delete=[("MATCH (n:SavedCircuit) WHERE n.key = $key DELETE n", {"key": key})],
    )
    return saved


def saved_circuits(store: GraphStore, *, run: str | None = None) -> list[SavedCircuit]:
    """The run's saved circuits, by name."""
    ref = resolve_run(store, run)
    rows = store.query_if_present(
        "MATCH (n:SavedCircuit) WHERE n.run = $run RETURN n.name AS name, n.run AS run, "
        "n.edges AS edges, n.note AS note, n.author AS author, n.created AS created",
        {"run": ref.key},
    )
    found = [
        SavedCircuit(r["name"], r["run"], tuple(r["edges"]), r["note"], r["author"], r["created"])
        for r in rows
    ]
    return sorted(found, key=lambda c: c.name)


def heads_labelled(store: GraphStore, text: str) -> list[dict]:
    """The heads labelled ``text`` (in any model) and, for each, the runs of its model whose
    circuit uses it: ``head``, ``model``, ``runs``, ``in_every_run``."""
    rows = store.query_if_present(
        "MATCH (n:Label) WHERE n.text = $text AND n.kind = 'component' "
        "RETURN n.model AS model, n.target AS head",
        {"text": text},
    )
    runs_of = defaultdict(list)
    for r in store.runs():
        runs_of[r["model"]].append(r["run"])
    out = []
    for row in rows:
        using = {
            r["run"]
            for r in store.query(
                "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE (a.key = $key OR "
                "b.key = $key) RETURN DISTINCT c.run AS run",
                {"key": f"{row['model']}|{row['head']}"},
            )
        }
        runs = sorted(using)
        every = bool(runs) and set(runs) == set(runs_of[row["model"]])
        out.append({"head": row["head"], "model": row["model"], "runs": runs,
                    "in_every_run": every})  # fmt: skip
    return sorted(out, key=lambda r: (not r["in_every_run"], r["model"], r["head"]))
