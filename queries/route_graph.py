"""Disjoint routes and critical components for many heads at once, per prompt.

A run's per-prompt graphs, over the nodes of :mod:`headgraph.queries.cone`
(``7.1@END``: a component at a token role), held as one edge list for all
prompts (a node is a name in a prompt). :func:`measure` takes
every head of a run in one pass, so that the ingest can keep each head's
redundancy (:mod:`headgraph.queries.redundancy_index`), and a single head's
cone the same way (:func:`headgraph.queries.redundancy.redundancy`):

- **routes** start at an input source (a site that is not a bias) and climb
  the layers to one of the target's firings;
- **connectivity**: the most node-disjoint routes, a max-flow with unit node
  capacities (all prompts in one flow network, which falls apart into one
  component per prompt, so each prompt's flow is read from its own sink);
- **on a route**: a component with a node that a source reaches and that
  reaches a target firing;
- **critical**: a component whose removal (every node of it) leaves no route,
  exactly: a target firing is reached from the sources avoiding the component
  (a bit per component, carried up the layers as bitsets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headgraph.queries.arrays import distinct
from headgraph.queries.cone import Node, is_constant, layer_order
from headgraph.workers import forked_map, usable_workers


@dataclass(frozen=True)
class RouteGraph:
    """Per-prompt DAGs over shared node names, edges unique per (prompt, up, down).

    Attributes:
        names: The nodes, by name id.
        n_prompts: Prompts.
        prompt, up, down: ``[edge]`` the prompt index and the name ids of its ends.
    """

    names: list[Node]
    n_prompts: int
    prompt: np.ndarray
    up: np.ndarray
    down: np.ndarray

    @classmethod
    def build(cls, names: list[Node], n_prompts: int, prompt, up, down) -> RouteGraph:
        """From edge arrays in any order and with repeats (kept once)."""
        g = max(len(names), 1)
        code = distinct((np.asarray(prompt, np.int64) * g + up) * g + down)
        return cls(names, n_prompts, code // g // g, code // g % g, code % g)


@dataclass(frozen=True)
class Measures:
    """One head's measures over the prompts where it fires with an edge into it.

    Attributes:
        connectivity: ``[prompt]`` disjoint routes; -1 where the head has no edge in.
        components: Component names (the columns of the two counts).
        present: ``[component]`` prompts in which the component is on a route.
        critical: ``[component]`` prompts in which removing it leaves no route.
    """

    connectivity: np.ndarray
    components: list[str]
    present: np.ndarray
    critical: np.ndarray


PARALLEL_EDGES = 200_000  # a graph this large spreads its max-flows over worker processes
FLOW_PROMPTS = 16  # prompts per flow network (one network for all grew faster than them)


def measure(
    graph: RouteGraph, targets: list[str], *, workers: int | None = None
) -> dict[str, Measures]:
    """The :class:`Measures` of each target head (or ``logits``) in ``graph``.

    Args:
        graph: The per-prompt graphs.
        targets: Heads (and ``logits``).
        workers: Processes for the targets' max-flows (:func:`headgraph.workers.forked_map`);
            None: every usable CPU for several targets in a graph of
            :data:`PARALLEL_EDGES` edges or more, else 1.
    """
    import scipy.sparse.csgraph  # noqa: F401  here, not once in every forked worker

    shared = _Shared.of(graph, targets)
    if workers is None:
        large = len(targets) > 1 and len(graph.prompt) >= PARALLEL_EDGES
        workers = usable_workers() if large else 1
    routes = forked_map(shared.connectivity, len(targets), workers=workers)
    return {t: shared.measure(i, routes[i]) for i, t in enumerate(targets)}


@dataclass(frozen=True)
class _Shared:
    """What every target's measures read: the graph over node ids (a name in a prompt
    where an edge has it: ``prompt``, ``name``), each node's incoming edges
    (``into[starts[v]:starts[v + 1]]``), which nodes are sources, which a source
    reaches (avoiding each component), and which targets each node reaches."""

    graph: RouteGraph
    targets: list[str]
    components: list[str]
    prompt: np.ndarray  # [node]
    name: np.ndarray  # [node]
    up: np.ndarray  # [edge] node ids
    down: np.ndarray
    into: np.ndarray  # edge ids by the node they enter
    starts: np.ndarray  # [node + 1]
    source: np.ndarray  # [node]
    reached: np.ndarray  # [node]
    avoiding: np.ndarray  # [node, component bits]
    above: np.ndarray  # [node, target bits]
    firing: np.ndarray  # node ids of the targets' firings (with edges in)
    firing_target: np.ndarray  # [firing] its target's index
    present: np.ndarray  # [prompt * component, target bits]: on a route to the target

    @classmethod
    def of(cls, graph: RouteGraph, targets: list[str]) -> _Shared:
        g, n_prompts = len(graph.names), graph.n_prompts
        components = sorted({x.component for x in graph.names})
        comp = np.array([components.index(x.component) for x in graph.names], dtype=np.int64)
        level = _levels(graph.names)
        is_source = [x.site and not is_constant(x.component) for x in graph.names]
        base = graph.prompt * g
        codes, ids = np.unique(
            np.concatenate([base + graph.up, base + graph.down]), return_inverse=True
        )
        up, down = np.split(ids.reshape(-1), 2)
        n, prompt, name = len(codes), codes // g, codes % g
        source = np.array(is_source, dtype=bool)[name]
        into = np.argsort(down, kind="stable")
        starts = np.searchsorted(down[into], np.arange(n + 1))
        # the targets' firings: a target's non-site nodes that edges enter
        which = {t: i for i, t in enumerate(targets)}
        bit = np.array([-1 if x.site else which.get(x.component, -1) for x in graph.names])
        firing = np.flatnonzero((bit[name] >= 0) & (np.diff(starts) > 0))
        reached, avoiding = _forward(up, down, level[name], source, comp[name], len(components))
        above = np.zeros((n, _words(len(targets))), dtype=np.uint64)
        _set_bits(above, firing, bit[name[firing]])
        _backward(above, up, down, level[name[up]])
        # on a route to each target (a firing's own bit lands on its own component,
        # which its target leaves out)
        on_route = reached & (above != 0).any(axis=1)
        groups = prompt * len(components) + comp[name]
        present = _group_or(above, on_route, groups, n_prompts * len(components))
        return cls(
            graph, targets, components, prompt, name, up, down, into, starts, source, reached,
            avoiding, above, firing, bit[name[firing]], present,
        )  # fmt: skip

    def connectivity(self, i: int) -> np.ndarray:
        """``[prompt]`` target ``i``'s node-disjoint routes; -1 where it has no edge in."""
        firings = self.firing[self.firing_target == i]
        measured = np.zeros(self.graph.n_prompts, dtype=bool)
        measured[self.prompt[firings]] = True
        return np.where(measured, self.disjoint(i, firings), -1)

    def measure(self, i: int, connectivity: np.ndarray) -> Measures:
        """Target ``i``'s measures, given its :meth:`connectivity`."""
        n_prompts, n_components = self.graph.n_prompts, len(self.components)
        firings = self.firing[self.firing_target == i]
        prompts = self.prompt[firings]
        routed = np.zeros(n_prompts, dtype=bool)
        routed[prompts[self.reached[firings]]] = True
        # critical: no firing of the target is reached avoiding the component
        kept = np.zeros((n_prompts, self.avoiding.shape[1]), dtype=np.uint64)
        np.bitwise_or.at(kept, prompts, self.avoiding[firings])
        cut = _unpack(~kept, n_components) & routed[:, None]  # [prompt, component]
        on = _unpack_bit(self.present, i, n_prompts, n_components)  # [prompt, component]
        if self.targets[i] in self.components:
            own = self.components.index(self.targets[i])
            cut[:, own] = on[:, own] = False
        return Measures(connectivity, self.components, on.sum(axis=0), cut.sum(axis=0))

    def disjoint(self, i: int, firings: np.ndarray) -> np.ndarray:
        """``[prompt]`` the node-disjoint routes into target ``i``'s ``firings``.

        A source feeding a firing directly is a route by itself, and some maximum
        set of routes uses it so (a route through it could end there instead):
        those count first, and a max-flow finds the rest.
        """
        a, b = self.starts[firings], self.starts[firings + 1]
        sizes = b - a
        at = np.repeat(a - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        ups = self.up[self.into[at]]
        direct = distinct(ups[self.source[ups]])
        direct_routes = np.bincount(self.prompt[direct], minlength=self.graph.n_prompts)
        return direct_routes + self.max_flow(i, firings, direct)

    def max_flow(self, i: int, firings: np.ndarray, direct: np.ndarray) -> np.ndarray:
        """``[prompt]`` the most node-disjoint routes into target ``i``'s ``firings``
        that avoid the ``direct`` sources: a flow network per :data:`FLOW_PROMPTS` prompts
        (the prompts' graphs are disjoint, and Dinic's algorithm costs more than linearly
        in its network: 2.9x the time for 2x the prompts in one network)."""
        n_prompts = self.graph.n_prompts
        mine = ((self.above[:, i // 64] >> np.uint64(i % 64)) & np.uint64(1)).astype(bool)
        mine &= self.reached
        mine[direct] = False
        is_firing = np.zeros(len(mine), dtype=bool)
        is_firing[firings] = True
        n_blocks = (n_prompts + FLOW_PROMPTS - 1) // FLOW_PROMPTS
        nodes = np.flatnonzero(mine)  # ascending, and so within each block
        nodes, node_cuts = _by_block(nodes, self.prompt[nodes] // FLOW_PROMPTS, n_blocks)
        arcs = np.flatnonzero(mine[self.up] & mine[self.down])  # edge ids, each in its prompt
        arcs, arc_cuts = _by_block(arcs, self.prompt[self.down[arcs]] // FLOW_PROMPTS, n_blocks)
        routes = np.zeros(n_prompts, dtype=np.int64)
        for b in range(n_blocks):
            if node_cuts[b] == node_cuts[b + 1]:
                continue
            first = b * FLOW_PROMPTS
            block_nodes = nodes[node_cuts[b] : node_cuts[b + 1]]
            block_arcs = arcs[arc_cuts[b] : arc_cuts[b + 1]]
            count = min(FLOW_PROMPTS, n_prompts - first)
            routes[first : first + count] = self._flow(
                block_nodes, block_arcs, is_firing, first, count
            )
        return routes

    def _flow(
        self, nodes: np.ndarray, edges: np.ndarray, is_firing: np.ndarray, first: int,
        n_prompts: int,
    ) -> np.ndarray:  # fmt: skip
        """``[n_prompts]`` the most node-disjoint routes in one network: ``nodes``
        (ascending) of prompts ``first`` to ``first + n_prompts``, and the ``edges`` between
        them."""
        from scipy.sparse import csr_array
        from scipy.sparse.csgraph import maximum_flow

        # vertices: 0 the source, 1 the sink, 2 + p prompt p's sink, then two per node
        # (in, out: a node carries one route) or one (a source, a firing)
        base = 2 + n_prompts
        target, start = is_firing[nodes], self.source[nodes]
        split = ~target & ~start
        inn = base + np.arange(len(nodes)) + np.cumsum(split) - split
        out = inn + split
        size = base + len(nodes) + int(split.sum())
        big = len(nodes) + 1
        ups = np.searchsorted(nodes, self.up[edges])  # [edge] each end's place in nodes
        downs = np.searchsorted(nodes, self.down[edges])
        tails = [inn[split], out[ups], np.zeros(int(start.sum()), np.int64)]
        heads = [out[split], inn[downs], inn[start]]
        tails += [inn[target], 2 + np.arange(n_prompts)]
        heads += [2 + self.prompt[nodes[target]] - first, np.ones(n_prompts, np.int64)]
        caps = [np.ones(len(t), np.int32) for t in tails[:3]]
        caps += [np.full(int(target.sum()), big, np.int32), np.full(n_prompts, big, np.int32)]
        arcs = (np.concatenate(tails), np.concatenate(heads))
        matrix = csr_array((np.concatenate(caps), arcs), shape=(size, size))
        into_sink = maximum_flow(matrix, 0, 1, method="dinic").flow[:, [1]].toarray()
        return into_sink.reshape(-1)[2 : 2 + n_prompts].astype(np.int64)


def _by_block(ids: np.ndarray, block: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` grouped by their ``block`` (their order kept within one), and where each of
    the ``n_blocks`` starts: ``(ids, cuts [n_blocks + 1])``."""
    order = np.argsort(block, kind="stable")
    return ids[order], np.searchsorted(block[order], np.arange(n_blocks + 1))


def _levels(names: list[Node]) -> np.ndarray:
    """``[name]`` the rank of its layer order: edges climb strictly."""
    keys = np.array([layer_order(n.component) for n in names], dtype=float)
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


def _words(bits: int) -> int:
    return max((bits + 63) // 64, 1)


def _set_bits(sets: np.ndarray, rows: np.ndarray, bits: np.ndarray) -> None:
    np.bitwise_or.at(sets, (rows, bits // 64), np.uint64(1) << (bits % 64).astype(np.uint64))


def _unpack(sets: np.ndarray, bits: int) -> np.ndarray:
    """``[row, word]`` bitsets as ``[row, bit]`` booleans, the first ``bits``."""
    as_bytes = np.ascontiguousarray(sets).view(np.uint8).reshape(len(sets), -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits].astype(bool)


def _unpack_bit(sets: np.ndarray, bit: int, rows: int, columns: int) -> np.ndarray:
    """Bit ``bit`` of ``[rows * columns, word]`` bitsets, as ``[rows, columns]``."""
    word = sets[:, bit // 64] >> np.uint64(bit % 64)
    return (word & np.uint64(1)).astype(bool).reshape(rows, columns)


def _forward(up, down, level, source, comp, n_components):
    """Which nodes a source reaches (``[node]``), and reaches avoiding each component
    (``[node, component bits]``), one layer order at a time, upwards (``level``,
    ``source`` and ``comp``: per node)."""
    words = _words(n_components)
    everything = np.zeros((1, words), dtype=np.uint64)
    _set_bits(everything, np.zeros(n_components, np.int64), np.arange(n_components))
    own = np.zeros((n_components, words), dtype=np.uint64)  # [component, bits]: its own bit
    _set_bits(own, np.arange(n_components), np.arange(n_components))
    reached = source.copy()
    avoiding = np.where(reached[:, None], everything & ~own[comp], np.uint64(0))
    order = np.lexsort((down, level[down]))
    up, down = up[order], down[order]
    for a, b in _runs(level[down]):
        ups, downs = up[a:b], down[a:b]
        starts = np.flatnonzero(np.r_[True, downs[1:] != downs[:-1]])
        into = downs[starts]
        reached[into] |= np.logical_or.reduceat(reached[ups], starts)
        carried = np.bitwise_or.reduceat(avoiding[ups], starts, axis=0)
        avoiding[into] |= carried & ~own[comp[into]]
    return reached, avoiding


def _backward(above: np.ndarray, up, down, up_level) -> None:
    """Each node's target bits: the targets it reaches (its own included), downwards."""
    order = np.lexsort((up, -up_level))
    up, down = up[order], down[order]
    for a, b in _runs(-up_level[order]):
        ups, downs = up[a:b], down[a:b]
        starts = np.flatnonzero(np.r_[True, ups[1:] != ups[:-1]])
        above[ups[starts]] |= np.bitwise_or.reduceat(above[downs], starts, axis=0)


def _runs(keys: np.ndarray):
    """``(start, stop)`` of each run of equal sorted ``keys``."""
    cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True]) if len(keys) else []
    return zip(cuts[:-1], cuts[1:], strict=True) if len(keys) else []


def _group_or(sets: np.ndarray, keep: np.ndarray, groups: np.ndarray, size: int) -> np.ndarray:
    """The OR of ``sets[keep]`` per group id: ``[size, words]``."""
    out = np.zeros((size, sets.shape[1]), dtype=np.uint64)
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(groups[rows], kind="stable")]
    if len(rows):
        starts = np.flatnonzero(np.r_[True, np.diff(groups[rows]) != 0])
        out[groups[rows[starts]]] = np.bitwise_or.reduceat(sets[rows], starts, axis=0)
    return out
