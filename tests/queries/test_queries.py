"""Paths, redundancy and features on a hand-built run with known answers, on every backend."""

import pytest

from headgraph.queries.features import features, singular_vector
from headgraph.queries.index_build import write_index
from headgraph.queries.paths import paths
from headgraph.queries.redundancy import redundancy
from headgraph.queries.selection import QueryError, resolve_run

DIAMOND = "embed@A -key[1]-> 0.0@END -query[0,1]-> 1.0@END"


@pytest.fixture(scope="module")
def store(hand_store):
    return hand_store


def routes(result):
    return [(r.text, round(r.score, 6), r.prompts) for r in result.routes]


def test_paths_rank_routes_by_score_over_all_prompts(store):
    result = paths(store, to="1.0")
    assert result.run == "hand" and result.exhaustive
    assert routes(result) == [
        (DIAMOND, round((0.6 * 0.4 + 0.7 * 0.5) / 3, 6), 2),
        ("pos_embed@B -key[1,0]-> 0.1@END -query[0]-> 1.0@END", round(0.5 * 0.3 / 3, 6), 1),
        ("pos_embed@END -query[1]-> 0.0@END -query[0,1]-> 1.0@END", round(0.2 * 0.5 / 3, 6), 1),
        ("1.0:qk_bias@END -query[0]-> 1.0@END", round(0.08 / 3, 6), 1),
    ]
    top = result.routes[0]
    assert top.share_of_prompts == pytest.approx(2 / 3)
    assert top.mean_score == pytest.approx((0.24 + 0.35) / 2)
    assert [h.role for h in top.hops] == ["A", "END"]
    assert [h.side for h in top.hops] == ["key", "query"]


def test_paths_filters(store):
    assert routes(paths(store, to="L1H0", from_="0.1")) == [
        ("0.1@END -query[0]-> 1.0@END", round(0.3 / 3, 6), 1)
    ]
    assert [r.text for r in paths(store, to="1.0", min_prompts=2).routes] == [DIAMOND]
    assert paths(store, to="1.0", side="key").routes == ()
    assert [r.text for r in paths(store, to="1.0", top=1).routes] == [DIAMOND]
    one = paths(store, to="1.0", prompt="p2")
    assert routes(one) == [
        (DIAMOND.replace("[0,1]", "[0,1]"), 0.35, 1),
        ("pos_embed@END -query[1]-> 0.0@END -query[0,1]-> 1.0@END", 0.1, 1),
    ]
    assert paths(store, to="a1.h0", score="min").routes[0].score == pytest.approx((0.4 + 0.5) / 3)


def test_paths_cut_at_max_hops_are_marked_truncated(store):
    result = paths(store, to="1.0", max_hops=1)
    first = result.routes[0]
    assert first.truncated and first.text == "... 0.0@END -query[0,1]-> 1.0@END"
    assert first.score == pytest.approx((0.4 + 0.5) / 3) and first.prompts == 2


@pytest.mark.parametrize("kept", [False, True], ids=["from the cone", "kept"])
def test_redundancy_counts_disjoint_routes_and_finds_the_critical_node(store, kept, monkeypatch):
    if kept:  # the index keeps every head's measures; read from there
        write_index(store, "hand")
    reads = []
    for method in ("query", "frame"):  # every read, as rows or as a frame
        read = getattr(store, method)
        monkeypatch.setattr(
            store,
            method,
            lambda cypher, *a, read=read, **k: reads.append(cypher) or read(cypher, *a, **k),
        )
    result = redundancy(store, to="1.0")
    assert any("SIGNAL" in cypher for cypher in reads) != kept  # kept: no edge is read
    c = result.connectivity
    assert c.per_prompt == {"p1": 2, "p2": 1}  # the bias is no input; p3 has no firing of 1.0
    assert (c.minimum, c.maximum, c.counts) == (1, 2, ((1, 1), (2, 1)))
    critical = {
        x.component: (x.critical_prompts, x.share, x.present_prompts) for x in result.criticality
    }
    assert critical == {"0.0": (1, 0.5, 2)}
    (group,) = result.substitutes
    assert (group.side, group.singular_vector) == ("query", 0)
    assert dict(group.members) == {"0.0@END": 2, "0.1@END": 1}
    assert (group.prompts_any, group.prompts_all) == (2, 1)


def test_redundancy_of_one_prompt(store):
    result = redundancy(store, to="1.0", prompt="p1")
    assert result.connectivity.per_prompt == {"p1": 2}
    assert result.criticality == ()


def test_features_of_a_head(store):
    result = features(store, head="0.0")
    assert result.firings == 3
    by_index = {f.index: f for f in result.features}
    assert by_index[1].firings == 2 and by_index[0].firings == 1
    assert by_index[1].sigma == pytest.approx(1.0) and by_index[0].sigma == pytest.approx(2.0)
    assert [f.index for f in result.features] == [1, 0]  # most used first
    writers = {(w.component, w.side): w.firings for w in by_index[1].writers}
    assert writers == {("embed", "key"): 2, ("pos_embed", "query"): 1}
    key_only = features(store, head="0.0", side="key").features[0]
    assert {w.component for w in key_only.writers} == {"embed"}


def test_one_singular_vector_has_writers_readers_and_prompts(store):
    report = singular_vector(store, sv="0.0:1")
    assert report.prompt_ids == ("p1", "p2")
    assert report.readers == (("1.0", "query", 2),)
    assert report.feature.firings == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: paths(s, to="2.0"), "does not exist: hand has 2 layers of 2 heads"),
        (lambda s: paths(s, to="1.0", run="nope"), "no run named 'nope'"),
        (lambda s: paths(s, to="nine"), "is not a head name"),
        (lambda s: paths(s, to="1.0", from_="mlp7"), "has layers 0 .. 1"),
        (lambda s: paths(s, to="1.0", prompt="p9"), "no prompt 'p9'"),
        (lambda s: redundancy(s, to="1.0", prompt="p9"), "no prompt 'p9'"),
        (lambda s: paths(s, to="1.0", side="both"), "use query, key, value, inhibit or any"),
        (lambda s: singular_vector(s, sv="0.0:5"), "indices 0 .. 1"),
        (lambda s: singular_vector(s, sv="0.0"), "write HEAD:INDEX"),
    ],
)
def test_bad_questions_are_refused_with_what_to_do(store, call, message):
    with pytest.raises(QueryError, match=message):
        call(store)


def test_the_newest_run_is_the_default(store):
    assert resolve_run(store).key == "hand"
