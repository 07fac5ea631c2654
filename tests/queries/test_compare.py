"""compare: exact precision and recall on the hand-built run; references checked; effects stored."""

import json

import pytest

from headgraph.queries.circuit import edge_detail
from headgraph.queries.compare import compare, load_reference
from headgraph.queries.effects import read_effects, strongest_edges, write_effects
from headgraph.queries.selection import QueryError

HAND = {
    "name": "hand reference",
    "classes": {"writers": ["0.0"], "readers": ["1.0", "L1H1"]},
    "edges": [{"from": "writers", "to": "readers", "side": "query", "role": "END"}],
}


def test_compare_gives_exact_precision_and_recall(hand_store, tmp_path):
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(HAND))
    result = compare(hand_store, reference=str(path))
    # run heads {0.0, 0.1, 1.0} against {0.0, 1.0, 1.1}
    assert (result.heads.true_positives, result.heads.predicted, result.heads.reference) == (
        2,
        3,
        3,
    )
    assert result.heads.precision == pytest.approx(2 / 3) and result.heads.recall == pytest.approx(
        2 / 3
    )
    assert result.heads.missing == ("1.1",) and result.heads.extra == ("0.1",)
    # run edges {0.0->1.0 q, 0.1->1.0 q} against {0.0->1.0 q, 0.0->1.1 q}
    assert (result.edges.precision, result.edges.recall, result.edges.f1) == (0.5, 0.5, 0.5)
    assert dict((c, (n, m)) for c, n, m in result.classes) == {"writers": (1, 1), "readers": (1, 2)}
    stricter = compare(hand_store, reference=str(path), min_prompts=2)
    assert stricter.edges.predicted == 1 and stricter.edges.precision == 1.0


def test_yaml_references_and_the_shipped_ones(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text(
        "classes:\n  a: ['0.0']\n  b: ['1.0']\nedges:\n  - {from: a, to: b, side: key}\n"
    )
    assert load_reference(str(path)).edges == {("0.0", "1.0", "key")}
    ioi = load_reference("ioi-gpt2")
    assert "9.9" in ioi.heads and ("7.3", "9.9", "query") in ioi.edges
    assert ("9.9", "7.3", "query") not in ioi.edges  # a later layer cannot feed an earlier one
    assert load_reference("tiny-ioi").heads == {
        "0.0",
        "0.1",
        "0.2",
        "0.3",
        "1.0",
        "1.1",
        "1.2",
        "1.3",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "needs a 'classes' mapping"),
        ('{"classes": {"a": "9.9"}}', "must list heads"),
        ('{"classes": {"a": ["nine"]}}', "is not a head name"),
        ('{"classes": {"a": ["1.0"]}, "edges": [{"from": "a", "to": "b", "side": "query"}]}',
         "neither a class nor a head"),
        ('{"classes": {}, "edges": [{"from": "1.0", "to": "2.0"}]}', "a side: query, key"),
        ("{not json", "cannot read it"),
    ],
)  # fmt: skip
def test_bad_references_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(QueryError, match=message):
        load_reference(str(path))
    with pytest.raises(QueryError, match="no reference 'nope'"):
        load_reference("nope")


def test_effects_are_stored_replaced_and_shown_on_the_edge(hand_store):
    row = {
        "upstream": "0.0", "head": "1.0", "side": "query", "mode": "global", "boost": False,
        "metric": "ioi", "prompts": 2, "clean": 3.0, "effect": -1.5, "control": 0.1,
        "difference": -1.6, "stderr": 0.2, "measured": "2026-11-26T00:00:00+00:00",
    }  # fmt: skip
    write_effects(hand_store, "hand", [row])
    write_effects(hand_store, "hand", [row | {"effect": -1.25, "difference": -1.35}])
    (stored,) = read_effects(hand_store, "hand")
    assert stored["effect"] == pytest.approx(-1.25) and stored["boost"] is False
    shown = edge_detail(hand_store, source="0.0@END", target="1.0@END", side="query").effect
    assert shown["difference"] == pytest.approx(-1.35)
    assert strongest_edges(hand_store, "hand", 2) == [
        ("embed", "0.0", "key", 3),
        ("0.0", "1.0", "query", 2),
    ]
