# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""A run's circuit as a picture needs it: components at token roles, and the edges between them.

Nodes are ``component@role`` as in :mod:`headgraph.queries.cone` (a site and a firing of
the same component at the same role are one node here, flagged ``fires``).
An edge is ``(upstream node, downstream node, side)`` aggregated over the
run's prompts: in how many it occurs, its mean share and weight, and the
singular vectors of the downstream head that carried it. With ``prompt``,
the same for one prompt's own graph. The detail functions answer the
explorer's side panel: what one edge carries, and what one component does.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

import numpy as np

from headgraph.queries.circuit_index import (
    DESCENDING,
    ORDER,
    TOP_SVS,
    IndexedLinks,
    read_links,
)
from headgraph.queries.cone import SIDES, Node, layer_order, load_cone
from headgraph.queries.effects import effect_of
from headgraph.queries.features import Feature, features
from headgraph.queries.selection import QueryError, resolve_run
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class CircuitNode:
    """``component@role``; ``order`` sorts layers (embeddings -1, an MLP after its heads)."""

    id: str
    component: str
    role: str
    order: float
    fires: bool
    prompts: int


@dataclass(frozen=True)
class CircuitEdge:
    """An edge between nodes, over the run's prompts (or one prompt)."""

    source: str
    target: str
    side: str
    prompts: int
    share_of_prompts: float
    mean_share: float
    mean_weight: float
    singular_vectors: tuple[int, ...]
    relevance: float = 0.0


@dataclass(frozen=True)
class Circuit:
    """Nodes and edges after the filters; ``roles`` in the order of their mean token position."""

    run: str
    model: str
    n_layers: int
    n_prompts: int
    prompt: str | None
    roles: tuple[str, ...]
    nodes: tuple[CircuitNode, ...]
    edges: tuple[CircuitEdge, ...]


def circuit(
    store: GraphStore,
    *,
    run: str | None = None,
    min_prompts: int = 1,
    min_share: float = 0.0,
    min_relevance: float = 0.0,
    top: int | None = None,
    prompt: str | None = None,
) -> Circuit:
    """The run's circuit (or one prompt's graph), strongest edges first.

    Args:
        store: The store.
        run: The run (default: the newest).
        min_prompts: Keep edges seen in at least this many prompts.
        min_share: Keep edges whose mean share is at least this.
        min_relevance: Keep edges whose relevance (their share of the prediction, summed
            over the prompts and divided by the run's prompts) is at least this.
        top: Keep at most this many edges (the most relevant, then most prompts, then
            highest mean share).
        prompt: One prompt's own graph instead of the run's.

    Raises:
        QueryError: unknown run or prompt.
    """
    ref = resolve_run(store, run)
    keep = {"min_prompts": min_prompts, "min_share": min_share, "min_relevance": min_relevance}
    n_prompts = max(ref.prompts, 1)
    kept = None
    if prompt is None:  # the run's links, kept ready when it finished
        kept = read_links(store, ref.key, n_prompts=n_prompts, top=top, **keep)
    if kept is not None:
        edges, fires = _indexed_edges(kept), kept.fires
    else:  # one prompt's graph, or a run indexed before the links were kept
        cone = load_cone(store, ref, None, prompt=prompt)
        n_prompts, fires = cone.n_prompts, {n.name for n in cone.nodes if not n.site}
        edges = _cone_edges(cone, top=top, **keep)
    node_prompts = Counter()
    for e in edges:
        node_prompts[e.target] = max(node_prompts[e.target], e.prompts)
        node_prompts[e.source] = max(node_prompts[e.source], e.prompts)
    nodes = []
    for name in {e.source for e in edges} | {e.target for e in edges}:
        node = Node.parse(name)
        order = layer_order(node.component)
        nodes.append(CircuitNode(name, node.component, node.role, order, name in fires, 0))
    nodes.sort(key=lambda n: (n.order, n.id))
    return Circuit(
        run=ref.key,
        model=ref.model,
        n_layers=ref.n_layers,
        n_prompts=n_prompts,
        prompt=prompt,
        roles=_role_order(store, ref.key, {n.role for n in nodes}),
        nodes=tuple(replace(n, prompts=node_prompts[n.id]) for n in nodes),
        edges=tuple(edges),
    )


def _indexed_edges(kept: IndexedLinks) -> list[CircuitEdge]:
    """The links :func:`~headgraph.queries.circuit_index.read_links` kept, as edges."""
    links, names, n_prompts = kept.links, kept.names, kept.n_prompts
    return [
        CircuitEdge(
            names[up],
            names[down],
            SIDES[side],
            prompts,
            prompts / n_prompts,
            share,
            weight,
            tuple(k for k in svs if k >= 0),
            relevance,
        )  # fmt: skip
        for up, down, side, prompts, share, weight, svs, relevance in zip(
            links["up"].tolist(),
            links["down"].tolist(),
            links["side"].tolist(),
            links["prompts"].tolist(),
            links["mean_share"].tolist(),
            links["mean_weight"].tolist(),
            links["svs"].tolist(),
            links["relevance"].tolist(),
            strict=True,
        )  # fmt: skip
    ]


def _cone_edges(
    cone, *, min_prompts: int, min_share: float, min_relevance: float, top: int | None
) -> list[CircuitEdge]:
    """The cone's edges aggregated into the circuit's edges, filtered, in its order."""
    names = [n.name for n in cone.nodes]
    edge = cone.rows["edge"].to_numpy()
    site = np.array([n.site for n in cone.nodes], dtype=bool)
    rows = cone.rows.assign(
        up=[names[i] for i in cone.edge_up[edge]],
        down=[names[i] for i in cone.edge_down[edge]],
        side=cone.edge_side[edge],
        site=site[cone.edge_up[edge]],
    ).sort_values(["prompt", "site"], kind="stable")  # sums in one order: see circuit_index
    grouped = rows.groupby(["up", "down", "side"], sort=True).agg(
        prompts=("prompt", "nunique"),
        mean_share=("share", "mean"),
        mean_weight=("weight", "mean"),
        relevance=("relevance", "sum"),
    )
    grouped["relevance"] /= cone.n_prompts
    grouped = grouped[
        (grouped["prompts"] >= min_prompts)
        & (grouped["mean_share"] >= min_share)
        & (grouped["relevance"] >= min_relevance)
    ]
    grouped = grouped.reset_index().sort_values(list(ORDER), ascending=[not d for d in DESCENDING])
    if top is not None:
        grouped = grouped.head(top)
    edges_of = defaultdict(list)
    for e, (up, down, side) in enumerate(
        zip(cone.edge_up.tolist(), cone.edge_down.tolist(), cone.edge_side.tolist(), strict=True)
    ):
        edges_of[(names[up], names[down], side)].append(e)
    edges = []
    for g in grouped.itertuples(index=False):
        counts = Counter()
        for e in edges_of[(g.up, g.down, g.side)]:
            for rank, k in enumerate(cone.singular_vectors(e, range(len(cone.prompt_ids)))):
                counts[k] += 1.0 / (rank + 1)
        svs = tuple(sorted(counts, key=lambda k: (-counts[k], k)))
        edges.append(
            CircuitEdge(
                g.up,
                g.down,
                SIDES[g.side],
                int(g.prompts),
                int(g.prompts) / cone.n_prompts,
                float(g.mean_share),
                float(g.mean_weight),
                svs[:TOP_SVS],
                float(g.relevance),
            )
        )
    return edges


def _role_order(store: GraphStore, run: str, roles: set[str]) -> tuple[str, ...]:
    """Roles by their mean token position over the run's prompts (``#k`` at k)."""
    positions = defaultdict(list)
    for row in store.query(
        "MATCH (p:Prompt) WHERE p.run = $run RETURN p.roles AS roles", {"run": run}
    ):
        for role, position in json.loads(row["roles"] or "{}").items():
            positions[role].append(position)

    def where(role: str) -> float:
        if role.startswith("#") and role[1:].isdigit():
            return float(role[1:])
        seen = positions.get(role)
        return sum(seen) / len(seen) if seen else float("inf")

    return tuple(sorted(roles, key=lambda r: (where(r), r)))


@dataclass(frozen=True)
class EdgeDetail:
    """What one circuit edge carries.

    Attributes:
        singular_vectors: ``(k, firings with k in S, mean term)``, most firings first.
        prompt_ids: Prompts in which the edge occurs.
        mean_weight, mean_share: Of the edge's contributions.
        effect: Its measured causal effect (``queries.effects``), or None where none was.
    """

    source: str
    target: str
    side: str
    singular_vectors: tuple[tuple[int, int, float], ...]
    prompt_ids: tuple[str, ...]
    mean_weight: float
    mean_share: float
    effect: dict | None


def edge_detail(
    store: GraphStore, *, source: str, target: str, side: str, run: str | None = None
) -> EdgeDetail:
    """One edge ``source -> target`` (nodes as ``component@role``) on ``side``.

    Raises:
        QueryError: unknown run, a malformed node, or no such edge.
    """
    ref = resolve_run(store, run)
    up, _, up_role = source.partition("@")
    head, _, down_role = target.partition("@")
    if not up_role or not down_role or side not in SIDES:
        raise QueryError(
            "an edge is SOURCE@ROLE -> HEAD@ROLE on the query, key, value, inhibit or logit side"
        )
    head = ref.head(head)
    if side == "logit":
        return _seed_detail(store, ref.key, source, target, up, up_role)
    rows = store.query(
        "MATCH (a)-[s:SIGNAL]->(f:Firing) WHERE f.run = $run AND f.head_name = $head "
        "AND s.upstream = $up AND s.side = $side RETURN f.prompt AS prompt, f.dest AS dest, "
        "f.dest_role AS dest_role, f.source_role AS source_role, s.token AS token, "
        "f.svs AS svs, f.terms AS terms, s.weight AS weight, s.share AS share",
        {"run": ref.key, "head": head, "up": up, "side": side},
    )

    def role(value, position) -> str:
        return value if value is not None else f"#{position}"

    kept = [
        r
        for r in rows
        if role(r["dest_role"], r["dest"]) == down_role
        and (
            side == "inhibit"  # at the competitor, whose role the firing does not hold
            or role(r["dest_role"] if side == "query" else r["source_role"], r["token"]) == up_role
        )
    ]
    if not kept:
        raise QueryError(f"no edge {source} -> {target} ({side}) in run {ref.key}")
    terms = defaultdict(list)
    for r in kept:
        for k, t in zip(r["svs"], r["terms"], strict=True):
            terms[int(k)].append(float(t))
    measured = effect_of(store, ref.key, up, head, side)
    return EdgeDetail(
        source=source,
        target=target,
        side=side,
        singular_vectors=tuple(
            (k, len(ts), sum(ts) / len(ts))
            for k, ts in sorted(terms.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ),
        prompt_ids=tuple(sorted({r["prompt"] for r in kept})),
        mean_weight=sum(r["weight"] for r in kept) / len(kept),
        mean_share=sum(r["share"] for r in kept) / len(kept),
        effect=measured,
    )


@dataclass(frozen=True)
class ComponentDetail:
    """One component at one role: its firings there and, for a head, the features it uses."""

    component: str
    role: str
    firings: int
    prompts: int
    sources: tuple[tuple[str, int], ...]
    mean_attention: float
    features: tuple[Feature, ...]


def component_detail(
    store: GraphStore, *, node: str, run: str | None = None, top: int = 5
) -> ComponentDetail:
    """A node ``component@role``: the head's firings with their destination there, and its features.

    Raises:
        QueryError: unknown run or component.
    """
    ref = resolve_run(store, run)
    component, _, role = node.partition("@")
    name = ref.component(component)
    if "." not in name or name.endswith(":qk_bias"):
        return ComponentDetail(name, role, 0, 0, (), 0.0, ())
    rows = store.query(
        "MATCH (f:Firing) WHERE f.run = $run AND f.head_name = $head RETURN f.prompt AS prompt, "
        "f.dest AS dest, f.dest_role AS dest_role, f.source AS source, "
        "f.source_role AS source_role, f.attention AS attention",
        {"run": ref.key, "head": name},
    )
    here = [r for r in rows if (r["dest_role"] or f"#{r['dest']}") == role]
    sources = Counter(r["source_role"] or f"#{r['source']}" for r in here)
    return ComponentDetail(
        component=name,
        role=role,
        firings=len(here),
        prompts=len({r["prompt"] for r in here}),
        sources=tuple(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))),
        mean_attention=sum(r["attention"] for r in here) / len(here) if here else 0.0,
        features=features(store, head=name, run=ref.key, top=top).features,
    )


def _seed_detail(store: GraphStore, run: str, source: str, target: str, up: str, role: str):
    """A seed's edge into the logits: its prompts, weight and share (no singular vectors:
    the unembedding reads the head's whole output)."""
    rows = [
        r
        for kind, where in (("Firing", "a.dest_role"), ("Site", "a.role"))
        for r in store.query(
            f"MATCH (a:{kind})-[p:PREDICTS]->(r:Prediction) WHERE r.run = $run AND "
            f"p.upstream = $up RETURN r.prompt AS prompt, r.dest AS dest, {where} AS role, "
            "p.weight AS weight, p.share AS share",
            {"run": run, "up": up},
        )
    ]
    kept = [r for r in rows if (r["role"] or f"#{r['dest']}") == role]
    if not kept:
        raise QueryError(f"no edge {source} -> {target} (logit) in run {run}")
    return EdgeDetail(
        source=source,
        target=target,
        side="logit",
        singular_vectors=(),
        prompt_ids=tuple(sorted({r["prompt"] for r in kept})),
        mean_weight=sum(r["weight"] for r in kept) / len(kept),
        mean_share=sum(r["share"] for r in kept) / len(kept),
        effect=None,
    )
