"""Disjoint routes, components on a route and critical components of many heads at once,
against networkx on random layered graphs (a max-flow with split nodes, and reachability
with each component removed), prompt by prompt."""

import random

import networkx as nx
import numpy as np
import pytest

from headgraph.queries import route_graph
from headgraph.queries.arrays import counted, counted_rows, distinct, ranges, within_runs
from headgraph.queries.cone import Node, is_constant
from headgraph.queries.route_graph import RouteGraph, measure

ROLES = ("A", "B", "END")
HEADS = [f"{layer}.{head}" for layer in range(4) for head in range(2)]


def names() -> list[Node]:
    """Sources (embeddings, and heads where they did not fire), a bias, and firings."""
    out = [Node(c, r, True) for c in ("embed", "pos_embed", "attn_bias0") for r in ROLES]
    for head in HEADS:
        out += [Node(head, r, site) for r in ROLES for site in (True, False)]
    return out


def layer(node: Node) -> float:
    if node.component in ("embed", "pos_embed"):
        return -1
    if node.component == "attn_bias0":
        return 0.5
    return int(node.component.split(".")[0])


def random_graph(rng: random.Random, n_prompts: int, density: float) -> RouteGraph:
    nodes = names()
    edges = []
    for p in range(n_prompts):
        for d, down in enumerate(nodes):
            if down.site:
                continue
            for u, up in enumerate(nodes):
                if layer(up) < layer(down) and rng.random() < density:
                    edges.append((p, u, d))
    if not edges:
        edges.append((0, 0, nodes.index(Node("1.0", "END", False))))
    prompt, up, down = (np.array(column) for column in zip(*edges, strict=True))
    # repeats (another side of the same pair) are kept once
    return RouteGraph.build(nodes, n_prompts, np.r_[prompt, prompt[:3]], np.r_[up, up[:3]],
                            np.r_[down, down[:3]])  # fmt: skip


def reference(graph: RouteGraph, target: str, prompt: int):
    """(routes, components on a route, components critical) of one prompt, by networkx;
    None where the target has no edge in."""
    here = graph.prompt == prompt
    edges = list(zip(graph.up[here].tolist(), graph.down[here].tolist(), strict=True))
    firings = {d for _, d in edges if graph.names[d].component == target}
    if not firings:
        return None
    sources = {
        u for u, _ in edges if graph.names[u].site and not is_constant(graph.names[u].component)
    }
    flow = nx.DiGraph()
    for s in sources:
        flow.add_edge("S", (s, "in"), capacity=1)
    for v in {v for e in edges for v in e} - firings:
        flow.add_edge((v, "in"), (v, "out"), capacity=1)
    for u, d in edges:
        flow.add_edge((u, "out"), (d, "in"), capacity=1)
    for f in firings:
        flow.add_edge((f, "in"), "T")  # no capacity: as many routes as arrive
    routes = nx.maximum_flow_value(flow, "S", "T")
    dag = nx.DiGraph(edges)
    reached = set(sources).union(*(nx.descendants(dag, s) for s in sources))
    reaching = set(firings).union(*(nx.ancestors(dag, f) for f in firings))
    on = {graph.names[v].component for v in (reached & reaching) - firings}
    routed = bool(firings & reached)
    critical = set()
    for component in {n.component for n in graph.names} - {target}:
        kept = dag.copy()
        kept.remove_nodes_from([v for v in dag if graph.names[v].component == component])
        starts = [s for s in sources if s in kept]
        left = set(starts).union(*(nx.descendants(kept, s) for s in starts))
        if routed and not firings & left:
            critical.add(component)
    return routes, on, critical


@pytest.mark.parametrize("flow_prompts", [1, 3, 16], ids=lambda n: f"{n}-prompt-networks")
@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "forked"])
@pytest.mark.parametrize("density", [0.08, 0.15, 0.3])
def test_measures_agree_with_networkx_prompt_by_prompt(density, workers, flow_prompts,
                                                        monkeypatch):  # fmt: skip
    monkeypatch.setattr(route_graph, "FLOW_PROMPTS", flow_prompts)
    rng = random.Random(int(density * 100))
    seen_critical = 0
    for _ in range(6):
        graph = random_graph(rng, n_prompts=7, density=density)
        found = measure(graph, HEADS, workers=workers)
        for head in HEADS:
            m = found[head]
            present, critical = {}, {}
            for p in range(graph.n_prompts):
                expected = reference(graph, head, p)
                if expected is None:
                    assert m.connectivity[p] == -1
                    continue
                routes, on, cut = expected
                assert m.connectivity[p] == routes, (head, p)
                for c in on:
                    present[c] = present.get(c, 0) + 1
                for c in cut:
                    critical[c] = critical.get(c, 0) + 1
            got = dict(zip(m.components, m.present.tolist(), strict=True))
            assert {c: k for c, k in got.items() if k} == present
            got = dict(zip(m.components, m.critical.tolist(), strict=True))
            assert {c: k for c, k in got.items() if k} == critical
            seen_critical += sum(critical.values())
    assert seen_critical > 0  # the sparse graphs have single points of failure


def test_a_head_measured_alone_equals_it_measured_with_the_others():
    graph = random_graph(random.Random(3), n_prompts=5, density=0.15)
    together = measure(graph, HEADS)
    for head in ("1.0", "3.1"):
        (alone,) = measure(graph, [head]).values()
        assert alone.connectivity.tolist() == together[head].connectivity.tolist()
        assert alone.critical.tolist() == together[head].critical.tolist()
        assert alone.present.tolist() == together[head].present.tolist()


def test_distinct_equals_numpy_unique():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 50, 1000)
    assert distinct(values).tolist() == np.unique(values).tolist()
    found, times = counted(values)
    assert times.tolist() == np.unique(values, return_counts=True)[1].tolist()
    assert distinct(np.zeros(0, np.int64)).tolist() == []
    a, b = rng.integers(0, 5, 300), rng.integers(0, 7, 300)
    rows, times = counted_rows(a, b)
    expected, how_often = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    assert rows.tolist() == expected.tolist() and times.tolist() == how_often.tolist()


def test_ranges_are_the_aranges_end_to_end():
    rng = np.random.default_rng(1)
    starts, lengths = rng.integers(0, 100, 50), rng.integers(0, 4, 50)
    expected = [i for s, n in zip(starts, lengths, strict=True) for i in range(s, s + n)]
    assert ranges(starts, lengths).tolist() == expected
    assert within_runs(lengths).tolist() == [i for n in lengths for i in range(n)]
    assert ranges(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []
