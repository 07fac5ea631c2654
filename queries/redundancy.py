# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""How many independent routes carry a head's signal, and which components stand in for others.

Three measures over the target's cone (``docs/queries.md`` defines them):

- **connectivity**: per prompt, the number of node-disjoint routes from the
  input sites (embeddings, MLPs, heads writing where they did not fire; not the
  biases, which carry no input) into the target's firings: a max-flow with unit
  node capacities. 1 means a single point of failure.
- **substitutes**: upstream components that feed the target at the same token
  and side mainly through the same singular vector (the one most often in the
  target's sparse set S when they feed it), like 7.3 and 7.9 into 9.9 in GPT-2.
- **criticality**: for each component, the share of the prompts with a route
  in which removing it (at every token) leaves the target no route at all.
  Routes climb the layers, so a route meets a component at most once and the
  routes through it are counted exactly: it is critical where they are all of them.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from headgraph.queries.cone import LOGITS, SIDES, Cone, is_constant, layer_order, load_cone
from headgraph.queries.selection import check_side, resolve_run
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class Connectivity:
    """Node-disjoint routes into the target, over the prompts where it fires with inputs.

    Attributes:
        prompts: Prompts measured.
        counts: ``(routes, prompts with that many)``, ascending.
        minimum, median, mean, maximum: Of the per-prompt counts.
        per_prompt: Prompt id -> count.
    """

    prompts: int
    counts: tuple[tuple[int, int], ...]
    minimum: int
    median: float
    mean: float
    maximum: int
    per_prompt: dict[str, int]


@dataclass(frozen=True)
class SubstituteGroup:
    """Components feeding the target at one token and side through the same main singular vector.

    Attributes:
        side: ``query`` or ``key``.
        singular_vector: The target's singular vector that most often carries each
            member's signal (in the target's S when the member feeds it).
        members: ``(component@role, prompts)``, most prompts first.
        prompts_any: Prompts in which at least one member feeds the target.
        prompts_all: Prompts in which every member does.
    """

    side: str
    singular_vector: int
    members: tuple[tuple[str, int], ...]
    prompts_any: int
    prompts_all: int


@dataclass(frozen=True)
class Critical:
    """A component whose removal cuts every route in some prompts.

    Attributes:
        component: Its name.
        critical_prompts: Prompts where removing it leaves no route.
        share: ``critical_prompts`` over the prompts with a route.
        present_prompts: Prompts where it lies on some route.
    """

    component: str
    critical_prompts: int
    share: float
    present_prompts: int


@dataclass(frozen=True)
class RedundancyResult:
    """The three measures for one head (see the module docstring)."""

    run: str
    target: str
    connectivity: Connectivity
    substitutes: tuple[SubstituteGroup, ...]
    criticality: tuple[Critical, ...]

    def to_pandas(self, table: str = "criticality"):
        """``criticality``, ``substitutes`` or ``connectivity`` as a data frame."""
        from headgraph.queries.tables import redundancy_frame

        return redundancy_frame(self, table)


def redundancy(
    store: GraphStore,
    *,
    to: str,
    run: str | None = None,
    role: str | None = None,
    side: str = "any",
    prompt: str | None = None,
) -> RedundancyResult:
    """Connectivity, substitutes and criticality for head ``to``.

    Args:
        store: The store to read.
        to: The target head (``9.9``, ``L9H9``, ``a9.h9``).
        run: The run (default: the newest).
        role: Only the target's firings whose destination token has this role.
        side: ``query``, ``key`` or ``any``: the side of the hop into the target.
        prompt: Only this prompt (by id).

    Raises:
        QueryError: an unknown run, head, side or prompt.
    """
    check_side(side)
    ref = resolve_run(store, run)
    target = ref.head(to)
    cone = load_cone(store, ref, target, role=role, prompt=prompt)
    into_target = np.isin(cone.edge_down, list(cone.targets))
    allowed = np.ones(len(into_target), dtype=bool)
    if side != "any":
        allowed = ~into_target | (cone.edge_side == SIDES.index(side))
    per_prompt, critical, present = {}, Counter(), Counter()
    rows = cone.rows[allowed[cone.rows["edge"].to_numpy()]]
    firing = set(rows["prompt"][into_target[rows["edge"].to_numpy()]].tolist())
    kinds = (
        [n.site and not is_constant(n.component) for n in cone.nodes],
        [layer_order(n.component) for n in cone.nodes],
    )
    for p, group in rows.groupby("prompt", sort=True):
        if p not in firing:  # the target does not fire here (with this role)
            continue
        edges = group["edge"].to_numpy()
        result = _prompt_measures(cone, cone.edge_up[edges], cone.edge_down[edges], kinds)
        if result is None:
            continue
        k, on_routes, cut_by = result
        per_prompt[cone.prompt_ids[p]] = k
        present.update(on_routes)
        critical.update(cut_by)
    counts = sorted(Counter(per_prompt.values()).items())
    values = list(per_prompt.values()) or [0]
    connectivity = Connectivity(
        prompts=len(per_prompt),
        counts=tuple(counts),
        minimum=min(values),
        median=float(statistics.median(values)),
        mean=statistics.fmean(values),
        maximum=max(values),
        per_prompt=per_prompt,
    )
    n = max(len(per_prompt), 1)
    criticality = tuple(
        Critical(c, critical[c], critical[c] / n, present[c])
        for c in sorted(critical, key=lambda c: (-critical[c], c))
    )
    return RedundancyResult(
        ref.key, target, connectivity, _substitutes(cone, allowed & into_target), criticality
    )


def _prompt_measures(cone: Cone, up: np.ndarray, down: np.ndarray, kinds):
    """One prompt: (disjoint routes, components on routes, components critical), or None.

    ``kinds`` holds per node id: whether it is an input source, and its layer order.
    """
    is_source, order_key = kinds
    pairs = np.unique(up.astype(np.int64) * len(cone.nodes) + down)  # one arc per node pair
    up, down = (pairs // len(cone.nodes)).tolist(), (pairs % len(cone.nodes)).tolist()
    sources = {u for u in up if is_source[u]}
    targets = cone.targets
    ins, outs = defaultdict(list), defaultdict(list)
    for u, d in zip(up, down, strict=True):
        ins[d].append(u)
        outs[u].append(d)
    order = sorted(set(up) | set(down), key=order_key.__getitem__)
    forward: dict[int, int] = {}  # paths from the sources (exact integers)
    for i in order:
        forward[i] = (i in sources) + sum(forward[u] for u in ins[i])
    backward: dict[int, int] = {}  # paths to the target's firings
    for i in reversed(order):
        backward[i] = (i in targets) + sum(backward[d] for d in outs[i])
    if not any(t in forward for t in targets):
        return None  # the target does not fire here (with this role)
    total = sum(forward[t] for t in targets if t in forward)
    through: Counter = Counter()
    for i in order:
        if forward[i] and backward[i] and i not in targets:
            through[cone.nodes[i].component] += forward[i] * backward[i]
    cut_by = [c for c, n in through.items() if total and n == total]
    return _disjoint_routes(ins, sources, targets, forward, backward), list(through), cut_by


def _disjoint_routes(ins, sources, targets, forward, backward) -> int:
    """Node-disjoint routes from the sources to the targets (unit node capacities).

    A source that feeds a target directly is a route by itself, and some
    maximum set of routes uses it so (a route through it could end there
    instead): those are counted first and the flow runs on the rest.
    """
    direct = {u for t in targets for u in ins.get(t, ()) if u in sources}
    on_route = [i for i in forward if forward[i] and backward[i] and i not in direct]
    index = {node: 2 + 2 * k for k, node in enumerate(on_route)}  # in: 2 + 2k, out: 3 + 2k
    arcs = []
    for i, k in index.items():
        if i in targets:
            arcs.append((k, 1, len(ins.get(i, ()))))  # to the sink, 1: as many as arrive
        else:
            arcs.append((k, k + 1, 1))  # through the node itself: once
        if i in sources:
            arcs.append((0, k, 1))  # from the source, 0
        arcs.extend((index[u] + 1, k, 1) for u in ins.get(i, ()) if u in index)
    return len(direct) + unit_max_flow(2 + 2 * len(on_route), arcs, 0, 1)


def unit_max_flow(n: int, arcs: list[tuple[int, int, int]], source: int, sink: int) -> int:
    """Maximum flow from ``source`` to ``sink`` over arcs ``(from, to, capacity)``.

    First a greedy pass along forward arcs, with a pointer per node and dead
    ends marked, which finds most of the flow in one sweep over the arcs (the
    graphs here are DAGs); then Ford-Fulkerson, one search of the residual
    graph per augmenting path, finishes it and proves it maximal. (networkx's
    general algorithms spent most of their time building graphs;
    ``tests/queries`` checks this one against networkx.)
    """
    first = [[] for _ in range(n)]  # arcs leaving each node, as indices
    head, capacity = [], []
    for u, v, c in arcs:
        first[u].append(len(head))
        head.append(v)
        capacity.append(c)
        first[v].append(len(head))  # the residual arc, index ^ 1
        head.append(u)
        capacity.append(0)
    flow = _greedy_flow(first, head, capacity, source, sink)
    while True:
        via = [-1] * n
        via[source] = -2
        stack = [source]
        while stack and via[sink] == -1:
            u = stack.pop()
            for arc in first[u]:
                v = head[arc]
                if capacity[arc] and via[v] == -1:
                    via[v] = arc
                    stack.append(v)
        if via[sink] == -1:
            return flow
        v = sink
        while v != source:
            arc = via[v]
            capacity[arc] -= 1
            capacity[arc ^ 1] += 1
            v = head[arc ^ 1]
        flow += 1


def _greedy_flow(first, head, capacity, source: int, sink: int) -> int:
    """Push unit paths along forward arcs (even indices) until none is left; the flow pushed."""
    pointer = [0] * len(first)
    dead = [False] * len(first)
    flow = 0
    while True:
        path, u = [], source
        while u != sink:
            arcs = first[u]
            while pointer[u] < len(arcs):
                arc = arcs[pointer[u]]
                if not arc & 1 and capacity[arc] and not dead[head[arc]]:
                    break
                pointer[u] += 1
            else:  # a dead end: back up
                dead[u] = True
                if u == source:
                    return flow
                u = head[path.pop() ^ 1]
                pointer[u] += 1
                continue
            path.append(arc)
            u = head[arc]
        for arc in path:
            capacity[arc] -= 1
            capacity[arc ^ 1] += 1
        flow += 1


def _substitutes(cone: Cone, into_target: np.ndarray) -> tuple[SubstituteGroup, ...]:
    """Upstream (component, role) feeding the target on one side, grouped by their main
    singular vector: the one most often in the target's S when they feed it."""
    if cone.target == LOGITS:  # the unembedding reads no singular vectors to group by
        return ()
    units: dict[tuple[str, str, str], dict[int, list]] = defaultdict(dict)
    rows = cone.rows[into_target[cone.rows["edge"].to_numpy()]]
    columns = (rows[c].tolist() for c in ("edge", "prompt", "dest", "source"))
    for edge, p, dest, source in zip(*columns, strict=True):
        svs = cone.sparse_sets[(cone.prompt_ids[p], cone.target, dest, source)]
        up = cone.nodes[int(cone.edge_up[edge])]
        if not is_constant(up.component):
            unit = (up.component, up.role, SIDES[cone.edge_side[edge]])
            units[unit].setdefault(int(p), []).extend(int(k) for k in svs)
    groups = defaultdict(list)
    for unit, by_prompt in sorted(units.items()):
        counts = Counter(k for svs in by_prompt.values() for k in set(svs))
        main = min(counts, key=lambda k: (-counts[k], k))
        groups[(unit[2], unit[1], main)].append(unit)
    out = []
    for (side, _, main), members in groups.items():
        if len(members) < 2:
            continue
        prompt_sets = [set(units[m]) for m in members]
        ranked = sorted(members, key=lambda m: (-len(units[m]), m))
        out.append(
            SubstituteGroup(
                side=side,
                singular_vector=main,
                members=tuple((f"{c}@{r}", len(units[(c, r, s)])) for c, r, s in ranked),
                prompts_any=len(set().union(*prompt_sets)),
                prompts_all=len(set.intersection(*prompt_sets)),
            )
        )
    return tuple(sorted(out, key=lambda g: (-g.prompts_any, g.side, g.members)))
