"""The strongest routes into a head (or between two components), over a run's prompts.

A *route* is a chain of per-prompt ``SIGNAL`` edges ending at one of the
target's firings: ``embed@IO -key-> 0.3@S2 -query-> 1.0@END``. It *occurs* in
a prompt when every one of its edges does, token for token (nodes are
components at token roles, see :mod:`headgraph.queries.cone`). It starts where the
signal enters (a site: an embedding, an MLP, a bias, a head that did not fire
there), at ``from_`` when given, or is cut at ``max_hops`` (``truncated``).

Scores (``docs/queries.md``): in one prompt, a route's score is the product
(or, with ``score="min"``, the minimum) of its hops' shares, each hop's
contribution as a fraction of the signal it feeds, clipped to [0, 1]. A
route's ``score`` over the run is the sum of its per-prompt scores divided
by the run's prompts (a prompt without the route adds 0), so that frequent
and strong routes rank first; ``mean_score`` averages over the prompts where
it occurs. Neither can grow when a route is extended, which makes a
best-first search exact: routes come out strongest first, and the search
stops after ``top``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from headgraph.queries.cone import SIDES, Cone, load_cone
from headgraph.queries.inbound import has_index
from headgraph.queries.indexed_cone import IndexedCone
from headgraph.queries.selection import QueryError, check_side, resolve_run
from headgraph.queries.store import GraphStore

BOUND, SCORED = 0, 1  # heap entries: at equal values, bounds first
MAX_EXPANSIONS = 200_000  # partial routes examined before the search gives up (reported)


@dataclass(frozen=True)
class Hop:
    """One edge of a route.

    Attributes:
        upstream: The component that writes (``0.3``, ``embed``, ``mlp0``).
        role: The token where it writes and the downstream head reads (``S2``, ``#7``).
        side: ``query`` or ``key``: which side of the downstream firing it feeds.
        downstream: The head it feeds, and the token it writes to, as ``1.0@END``.
        singular_vectors: The downstream firing's singular vectors, most often first.
    """

    upstream: str
    role: str
    side: str
    downstream: str
    singular_vectors: tuple[int, ...]


@dataclass(frozen=True)
class Route:
    """A route into the target, aggregated over the prompts where it occurs.

    Attributes:
        hops: From the start to the target.
        score: Per-prompt scores summed over the run's prompts, divided by their number.
        mean_score: The mean per-prompt score where the route occurs.
        prompts: Prompts in which the whole route occurs.
        share_of_prompts: ``prompts`` over the run's prompts.
        truncated: The start is a firing head whose own inputs were cut by ``max_hops``.
    """

    hops: tuple[Hop, ...]
    score: float
    mean_score: float
    prompts: int
    share_of_prompts: float
    truncated: bool

    @property
    def text(self) -> str:
        """``embed@IO -key[3]-> 0.3@S2 -query[0,2]-> 1.0@END``; ``...`` before a truncated start."""
        first = self.hops[0]
        parts = [("... " if self.truncated else "") + f"{first.upstream}@{first.role}"]
        for hop in self.hops:
            svs = ",".join(map(str, hop.singular_vectors[:3]))
            parts.append(f"-{hop.side}[{svs}]-> {hop.downstream}")
        return " ".join(parts)


@dataclass(frozen=True)
class PathResult:
    """The answer to a path query.

    Attributes:
        run: The run read.
        target: The head, ``L.H``.
        routes: Strongest first.
        score: ``product`` or ``min``.
        exhaustive: False when the search hit its expansion limit before ``top`` routes.
    """

    run: str
    target: str
    routes: tuple[Route, ...]
    score: str
    exhaustive: bool

    def to_pandas(self):
        """One row per route (rank, score, prompts, share, hops, route text)."""
        from headgraph.queries.tables import paths_frame

        return paths_frame(self)

    def to_networkx(self):
        """The routes' union as a ``networkx.DiGraph`` of ``component@role`` nodes."""
        from headgraph.queries.tables import paths_graph

        return paths_graph(self)


def paths(
    store: GraphStore,
    *,
    to: str,
    from_: str | None = None,
    run: str | None = None,
    role: str | None = None,
    side: str = "any",
    max_hops: int = 4,
    min_prompts: int = 1,
    top: int = 10,
    prompt: str | None = None,
    score: str = "product",
    index: bool = True,
) -> PathResult:
    """The strongest routes into head ``to`` (from component ``from_``, when given).

    Args:
        store: The store to read.
        to: The target head (``9.9``, ``L9H9``, ``a9.h9``).
        from_: A component the routes must start at (a head, ``embed``, ``mlp0``...).
        run: The run (default: the newest).
        role: Only the target's firings whose destination token has this role.
        side: ``query``, ``key`` or ``any``: the side of the last hop, into the target.
        max_hops: The longest route.
        min_prompts: Keep routes that occur in at least this many prompts.
        top: How many routes.
        prompt: Only this prompt (by id).
        score: ``product`` or ``min`` of the hops' shares.
        index: Read through the run's route index (:mod:`headgraph.queries.inbound`),
            when it has one; False reads the target's whole cone, as for a run without
            one (the same routes, slower on large runs).

    Raises:
        QueryError: an unknown run, head, side, score or prompt.
    """
    ref = resolve_run(store, run)
    target = ref.head(to)
    source = ref.component(from_) if from_ else None
    check_side(side)
    if score not in ("product", "min"):
        raise QueryError(f"score {score!r}: use product or min")
    if max_hops < 1 or top < 1 or min_prompts < 1:
        raise QueryError("max_hops, top and min_prompts must be at least 1")
    if index and has_index(store, ref.key):  # read only the nodes the search walks through
        cone = IndexedCone(store, ref, target, role=role, prompt=prompt)
    else:  # a run written before the route index: its whole cone
        cone = load_cone(store, ref, target, role=role, prompt=prompt)
    routes, exhaustive = _search(
        cone,
        source=source,
        side=side,
        max_hops=max_hops,
        min_prompts=min_prompts,
        top=top,
        product=score == "product",
    )
    return PathResult(ref.key, target, tuple(routes), score, exhaustive)


def _search(cone: Cone | IndexedCone, *, source, side, max_hops, min_prompts, top, product):
    """Best-first over partial routes, extended backwards from the target.

    The edges into a node come strongest first (by their totals over the run). A route
    extended by one of them enters the heap with a bound on its score: the smaller of
    the route it extends and the edge's total (shares are at most 1), and for products
    the edge's total times the route's highest score in a prompt. When it comes out,
    the node's next edge goes in, with a bound no higher, and its own score is computed
    and it goes back in with that. At equal values bounds come out first, so when a
    scored route comes out every route that could tie with it has its score: routes come
    out strongest first, ties by name. The search reads an edge's per-prompt rows, and
    offers the next edge, only when a route through it may rank: its cost follows the
    routes it returns, not the edges it could try.
    """
    reach = cone.reach(source) if source else None
    heap, routes, expansions = [], [], 0

    def name(edge: int) -> tuple[str, int]:
        return cone.nodes[cone.edge_up[edge]].key, int(cone.edge_side[edge])

    usable: dict[tuple[int, int], _Found] = {}

    def edges_into(node: int, hops: int) -> _Found:
        """The edges into ``node`` that can make a route of ``hops`` (the side asked for
        into the target; within reach of ``source``), strongest first, found as far as
        the search asks (a node's weaker edges, in the route index, are read in chunks)."""
        if (node, hops) not in usable:
            usable[node, hops] = _Found(
                edge
                for edge in cone.edges_into(node)
                if (hops > 1 or side == "any" or SIDES[cone.edge_side[edge]] == side)
                and (reach is None or reach(int(cone.edge_up[edge])) <= max_hops - hops)
            )
        return usable[node, hops]

    def offer(into: _Found, at: int, route: tuple, hops: int) -> None:
        """Push ``into``'s edge ``at``, if any, as the extension of ``route`` (edges, key,
        scores, score and highest score in a prompt; empty for a route into the target)
        to a route of ``hops``."""
        edge = into.get(at)
        if edge is not None:
            edges, key, _, score, peak = route
            bound = cone.total(edge) if not edges else min(score, cone.total(edge) * peak)
            candidate = (into, at, route, hops)
            entry = (-bound, BOUND, (*name(edge), *key), (edge, *edges), None, candidate)
            heapq.heappush(heap, entry)

    for target in cone.targets:
        offer(edges_into(target, 1), 0, ((), (cone.nodes[target].key,), None, 0.0, 1.0), 1)
    while heap and len(routes) < top:
        _, _, key, edges, scores, candidate = heapq.heappop(heap)
        if candidate is not None:  # a bound: offer the node's next edge, then score this one
            into, at, route, hops = candidate
            offer(into, at + 1, route, hops)
            scores = extended(route[2], cone.shares(edges[0]), product)
            if scores and len(scores) >= min_prompts:
                heapq.heappush(heap, (-sum(scores.values()), SCORED, key, edges, scores, None))
            continue
        expansions += 1
        if expansions > MAX_EXPANSIONS:
            return routes, False
        first = int(cone.edge_up[edges[0]])
        node = cone.nodes[first]
        if source is not None and node.component == source:
            routes.append(_route(cone, edges, scores, truncated=False))
            continue
        if source is None and node.site:
            routes.append(_route(cone, edges, scores, truncated=False))
            continue
        if len(edges) == max_hops:
            if source is None:
                routes.append(_route(cone, edges, scores, truncated=True))
            continue
        if source is None and cone.node_prompts(first).isdisjoint(scores):
            # a firing whose inputs were not traced in these prompts
            routes.append(_route(cone, edges, scores, truncated=True))
            continue
        peak = max(scores.values()) if product else 1.0  # sum(p * s) <= peak * sum(s)
        route = (edges, key, scores, sum(scores.values()), peak)
        offer(edges_into(first, len(edges) + 1), 0, route, len(edges) + 1)
    return routes, True


def extended(parent: dict[int, float] | None, shares: dict[int, float], product: bool):
    """Per-prompt scores of a route (``parent``; None: no edge yet) extended by an edge
    with these per-prompt ``shares``: in the prompts where both occur, their product
    (or minimum)."""
    if parent is None:
        return shares
    return {
        p: (s * shares[p] if product else min(s, shares[p]))
        for p, s in parent.items()
        if p in shares
    }


class _Found:
    """Edges from an iterator, kept as far as :meth:`get` has asked for them."""

    def __init__(self, edges: Iterator[int]) -> None:
        self._edges, self._found = edges, []

    def get(self, at: int) -> int | None:
        """The edge at ``at`` (None: there are not so many)."""
        while len(self._found) <= at:
            edge = next(self._edges, None)
            if edge is None:
                return None
            self._found.append(edge)
        return self._found[at]


def _route(
    cone: Cone | IndexedCone, edges: tuple[int, ...], scores: dict[int, float], *, truncated
) -> Route:
    prompts = sorted(scores)
    hops = []
    for edge in edges:
        up, down = cone.nodes[int(cone.edge_up[edge])], cone.nodes[int(cone.edge_down[edge])]
        svs = cone.singular_vectors(edge, prompts)
        hops.append(Hop(up.component, up.role, SIDES[cone.edge_side[edge]], down.name, svs))
    total = sum(scores[p] for p in prompts)
    return Route(
        hops=tuple(hops),
        score=total / cone.n_prompts,
        mean_score=total / len(prompts),
        prompts=len(prompts),
        share_of_prompts=len(prompts) / cone.n_prompts,
        truncated=truncated,
    )
