"""Score a run's circuit against a reference circuit: precision, recall and F1 over heads and edges.

A reference (JSON, or YAML) names classes of heads and the edges between them:

    {"name": "ioi-gpt2", "classes": {"name mover": ["9.9", "10.0", "9.6"], ...},
     "edges": [{"from": "S-inhibition", "to": "name mover", "side": "query", "role": "END"}]}

An edge's ends are classes or heads. It stands for every pair of their heads
with the upstream head in an earlier layer (only those can talk). ``role`` is
documentation: matching is over ``(upstream head, downstream head, side)``.

The run's circuit is its ``CARRIES`` aggregates: an edge ``(a, b, side)``
between two heads is in it when a ``CARRIES`` row for it has at least
``min_prompts`` prompts and a share of the prompts of at least ``min_share``.
Its heads are the heads at either end of such an edge, and the heads that a run
seeded from the prediction feeds into the logits (``head -> logits``, as often).
Edges are scored on the sides the reference names edges on: a reference of query
and key edges says nothing about a run's value or inhibition edges.
``ioi-gpt2`` (Wang et al.'s IOI circuit in GPT-2 small) and ``tiny-ioi`` (the bundled model's card)
ship with the package; any other reference is a file. With no reference named,
the run's model's own is used (``gpt2`` -> ``ioi-gpt2``, ``tiny-ioi`` ->
``tiny-ioi``); a model with none must be given one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from headgraph.errors import InputError, QueryError
from headgraph.names import EDGE_SIDES, Head, model_name
from headgraph.queries.selection import resolve_run
from headgraph.queries.store import GraphStore

REFERENCES = Path(__file__).parent / "references"
MODEL_REFERENCES = {
    "gpt2": "ioi-gpt2",
    "gpt2-small": "ioi-gpt2",
    "tiny-ioi": "tiny-ioi",
    "tiny-ioi-rope": "tiny-ioi-rope",
}
_HEAD = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class Reference:
    """A reference circuit: head classes and the (upstream, downstream, side) edges they imply."""

    name: str
    classes: dict[str, tuple[str, ...]]
    edges: frozenset[tuple[str, str, str]]

    @property
    def heads(self) -> frozenset[str]:
        return frozenset(h for heads in self.classes.values() for h in heads)


@dataclass(frozen=True)
class Score:
    """Precision, recall and F1 of a predicted set against a reference set."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    reference: int
    missing: tuple
    extra: tuple


@dataclass(frozen=True)
class Comparison:
    """A run against a reference: over heads, over edges (with side), and per class."""

    run: str
    reference: str
    heads: Score
    edges: Score
    classes: tuple[tuple[str, int, int], ...]  # (class, heads found, heads in the class)
    edge_sides: tuple[str, ...] = ("query", "key")  # the sides the edges were scored on

    def to_pandas(self):
        """Precision, recall and F1 over heads and over edges, one row each."""
        from headgraph.queries.tables import comparison_frame

        return comparison_frame(self)


def load_reference(name_or_path: str) -> Reference:
    """A shipped reference by name (``ioi-gpt2``, ``tiny-ioi``) or a JSON/YAML file.

    Raises:
        QueryError: no such reference, or a malformed one (the message names the problem).
    """
    path = REFERENCES / f"{name_or_path}.json"
    if not path.exists():
        path = Path(name_or_path)
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in REFERENCES.glob("*.json")))
            raise QueryError(f"no reference {name_or_path!r}: name one of {shipped}, or a file")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
    except Exception as error:  # noqa: BLE001 - JSON's, YAML's and the file system's errors
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise QueryError(f"{path}: cannot read it as a reference ({first})") from None
    return _parse(data, str(path))


def _parse(data, where: str) -> Reference:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise QueryError(f"{where}: a reference needs a 'classes' mapping of names to head lists")
    classes = {}
    for name, heads in data["classes"].items():
        if not isinstance(heads, list):
            raise QueryError(f'{where}: class {name!r} must list heads, e.g. ["9.9", "10.0"]')
        try:
            classes[str(name)] = tuple(str(Head.parse(str(h))) for h in heads)
        except InputError as error:
            raise QueryError(f"{where}: class {name!r}: {error}") from None
    edges = set()
    for i, edge in enumerate(data.get("edges", [])):
        if not isinstance(edge, dict) or edge.get("side") not in EDGE_SIDES:
            raise QueryError(
                f"{where}: edge {i} needs 'from', 'to' and a side: {', '.join(EDGE_SIDES)}"
            )
        ups, downs = (_members(classes, edge.get(end), where, i) for end in ("from", "to"))
        edges |= {
            (u, d, edge["side"])
            for u in ups
            for d in downs
            if Head.parse(u).layer < Head.parse(d).layer
        }
    return Reference(str(data.get("name", where)), classes, frozenset(edges))


def _members(classes, end, where, i) -> tuple[str, ...]:
    if end in classes:
        return classes[end]
    try:
        return (str(Head.parse(str(end))),)
    except InputError:
        raise QueryError(f"{where}: edge {i}: {end!r} is neither a class nor a head") from None


def compare(
    store: GraphStore,
    *,
    reference: str | Reference | None = None,
    run: str | None = None,
    min_prompts: int = 1,
    min_share: float = 0.0,
    min_relevance: float = 0.0,
) -> Comparison:
    """Score the run's circuit against ``reference`` (see the module docstring).

    Args:
        store: The store to read.
        reference: A shipped reference's name, a file, a :class:`Reference`, or None
            for the run's model's own.
        run: The run (default: the newest).
        min_prompts, min_share: Which of the run's edges count.
        min_relevance: An edge counts when its relevance, over all its token roles, is at
            least this.

    Raises:
        QueryError: unknown run or reference, or no reference for the run's model.
    """
    ref = resolve_run(store, run)
    if reference is None:
        name = model_name(ref.model)
        if name not in MODEL_REFERENCES:
            shipped = ", ".join(sorted(p.stem for p in REFERENCES.glob("*.json")))
            raise QueryError(
                f"no reference circuit is known for model {name!r}: name one with "
                f"--reference ({shipped}, or a JSON/YAML file)"
            )
        reference = MODEL_REFERENCES[name]
    circuit = reference if isinstance(reference, Reference) else load_reference(reference)
    rows = store.query(
        "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run "
        "RETURN a.name AS up, b.name AS down, c.side AS side, c.prompts AS prompts, "
        "c.share_of_prompts AS share, coalesce(c.relevance, 0.0) AS relevance",
        {"run": ref.key},
    )
    relevance: Counter = Counter()
    for r in rows:
        relevance[(r["up"], r["down"], r["side"])] += r["relevance"]
    counted = [
        r for r in rows
        if _HEAD.match(r["up"]) and r["prompts"] >= min_prompts and r["share"] >= min_share
        and relevance[(r["up"], r["down"], r["side"])] >= min_relevance
    ]  # fmt: skip
    edges = {(r["up"], r["down"], r["side"]) for r in counted if _HEAD.match(r["down"])}
    seeds = {r["up"] for r in counted if r["down"] == "logits"}  # seeded from the prediction
    heads = {h for up, down, _ in edges for h in (up, down)} | seeds
    sides = tuple(s for s in EDGE_SIDES if any(e[2] == s for e in circuit.edges))
    edges = {e for e in edges if e[2] in sides}  # what the reference can judge
    return Comparison(
        run=ref.key,
        reference=circuit.name,
        heads=score(heads, circuit.heads),
        edges=score(edges, circuit.edges),
        classes=tuple(
            (name, len(set(members) & heads), len(members))
            for name, members in circuit.classes.items()
        ),
        edge_sides=sides,
    )


def score(predicted: set, reference: set | frozenset) -> Score:
    """Precision, recall and F1 (0 where undefined)."""
    hits = len(predicted & reference)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(reference) if reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(
        precision,
        recall,
        f1,
        hits,
        len(predicted),
        len(reference),
        tuple(sorted(reference - predicted)),
        tuple(sorted(predicted - reference)),
    )
