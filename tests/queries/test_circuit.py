"""The circuit view's queries on the hand-built run, on every backend."""

import pytest

from headgraph.queries.circuit import circuit, component_detail, edge_detail
from headgraph.queries.selection import QueryError
from headgraph.queries.stats import singular_vector_usage, sparse_set_sizes


def test_circuit_aggregates_edges_over_prompts(hand_store):
    c = circuit(hand_store)
    edges = {(e.source, e.target, e.side): e for e in c.edges}
    first = edges[("embed@A", "0.0@END", "key")]
    assert first.prompts == 3 and first.mean_share == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    assert edges[("0.0@END", "1.0@END", "query")].prompts == 2
    assert c.edges[0] == first  # most prompts first
    assert len(c.edges) == 6 and c.roles == ("A", "B", "END")
    fires = {n.id: n.fires for n in c.nodes}
    assert fires["0.0@END"] and not fires["embed@A"]


def test_circuit_filters_and_one_prompt(hand_store):
    assert [(e.source, e.target) for e in circuit(hand_store, min_prompts=2).edges] == [
        ("embed@A", "0.0@END"),
        ("0.0@END", "1.0@END"),
    ]
    assert len(circuit(hand_store, top=1).edges) == 1
    assert {e.source for e in circuit(hand_store, min_share=0.5).edges} == {
        "embed@A",
        "pos_embed@B",
    }
    one = circuit(hand_store, prompt="p2")
    assert {(e.source, e.target) for e in one.edges} == {
        ("embed@A", "0.0@END"),
        ("pos_embed@END", "0.0@END"),
        ("0.0@END", "1.0@END"),
    }
    with pytest.raises(QueryError, match="no prompt 'p7'"):
        circuit(hand_store, prompt="p7")


def test_edge_detail_lists_singular_vectors_with_terms_and_prompts(hand_store):
    d = edge_detail(hand_store, source="0.0@END", target="1.0@END", side="query")
    assert d.prompt_ids == ("p1", "p2")
    assert d.singular_vectors == ((0, 2, pytest.approx(7.5)), (1, 1, pytest.approx(5.0)))
    assert d.effect is None
    with pytest.raises(QueryError, match="no edge"):
        edge_detail(hand_store, source="0.1@A", target="1.0@END", side="query")


def test_component_detail(hand_store):
    d = component_detail(hand_store, node="0.0@END")
    assert (d.firings, d.prompts, d.sources) == (3, 3, (("A", 3),))
    assert [f.index for f in d.features] == [1, 0]


def test_stats_for_the_figures(hand_store):
    sizes = sparse_set_sizes(hand_store)
    assert sizes["0.0"] == {1: 3} and sizes["1.0"] == {1: 1, 2: 1} and sizes["0.1"] == {2: 1}
    usage = singular_vector_usage(hand_store, heads=["1.0"])
    assert usage == {"1.0": {0: (2, 2), 1: (1, 1)}}
