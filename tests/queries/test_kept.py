"""What a run keeps ready, read back, equals what is computed from its edges, on both
backends, for one real run (ingested once for them all): the circuit's pages (and a view
of the strongest links reads only the first pages), and for every head the redundancy
(and the logits'; filters still read the cone) and the features (on each side)."""

import numpy as np
import pytest

from headgraph.ingest.core.records import parse_seeds
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import task_prompts
from headgraph.queries import circuit_index
from headgraph.queries.circuit import circuit
from headgraph.queries.circuit_index import links_frame, pack_pages, unpack
from headgraph.queries.features import features
from headgraph.queries.index_build import write_index
from headgraph.queries.redundancy import redundancy
from headgraph.queries.store import open_store
from tests.conftest import small_model

VIEWS = [
    {},
    {"top": 60},
    {"top": 1},
    {"min_prompts": 3},
    {"min_share": 0.4, "top": 10},
    {"min_relevance": 0.01},
    {"min_prompts": 2, "min_share": 0.2, "min_relevance": 0.001, "top": 25},
    {"min_prompts": 10**6},  # nothing passes
]
HEADS = [f"{layer}.{head}" for layer in range(3) for head in range(4)] + ["logits"]


def heads_for(store):
    """Every head on the embedded store; on the server, whose queries are the same
    statements and slower, every third one (a head of each layer, and the logits)."""
    return HEADS if store.kind == "embedded" else HEADS[::3]


def circuits(store, views):
    return [circuit(store, run="tiny", **v) for v in views]


def from_every_edge(store, views):
    """The same views computed from the run's edges (the circuit's pages removed)."""
    for label in ("CircuitIndex", "CircuitPage"):
        store.query(f"MATCH (c:{label}) WHERE c.run = 'tiny' DELETE c")
    try:
        return circuits(store, views)
    finally:
        write_index(store, "tiny")


@pytest.fixture(scope="module")
def store(linear_tiny_store):
    return linear_tiny_store  # seeded from the prediction: the logits too


@pytest.fixture(scope="module")
def every_edge(store):
    """The views from every edge, once a module: they do not depend on the pages."""
    return from_every_edge(store, VIEWS)


def test_the_kept_circuit_equals_the_circuit_of_every_edge(store, every_edge):
    kept = circuits(store, VIEWS)
    assert len(kept[0].edges) > 100 and len(kept[1].edges) == 60
    assert {e.side for e in kept[0].edges} >= {"query", "key", "value", "inhibit", "logit"}
    assert any(e.singular_vectors for e in kept[0].edges)
    assert not kept[-1].edges
    assert kept == every_edge


def test_the_strongest_links_read_only_the_first_page(store, every_edge, monkeypatch):
    monkeypatch.setattr(circuit_index, "PAGE_LINKS", 40)
    write_index(store, "tiny")
    try:
        reads = []
        query = store.query

        def counted(cypher, params=None):
            reads.append("CircuitPage" in cypher)
            return query(cypher, params)

        monkeypatch.setattr(store, "query", counted)
        top = circuit(store, run="tiny", top=5)
        assert sum(reads) == 1  # one page of 40 holds the 5 strongest
        reads.clear()
        whole = circuit(store, run="tiny")
        assert sum(reads) == -(-len(whole.edges) // 40) > 1  # every page
        monkeypatch.setattr(store, "query", query)
        assert top.edges == whole.edges[:5]
        assert circuits(store, VIEWS) == every_edge  # pages of 40 stitched back together
    finally:
        monkeypatch.undo()
        write_index(store, "tiny")


def test_one_prompt_is_still_read_from_its_edges(store):
    first = store.query("MATCH (p:Prompt) WHERE p.run = 'tiny' RETURN p.id AS id ORDER BY p.id")
    one = circuit(store, run="tiny", prompt=first[0]["id"])
    assert one.edges and all(e.prompts == 1 for e in one.edges)
    assert one.n_prompts == 1


def test_a_busy_random_model_keeps_its_circuit(tmp_path):
    model = small_model(seed=1)
    prompts = task_prompts(model, 12, seed=0, task="ioi")
    with open_store(str(tmp_path)) as store:
        seeds = parse_seeds(f"{model.n_layers - 1}.*", "END:*", n_heads=model.n_heads)
        ingest(model, prompts, store=store, run="tiny", seeds=seeds)
        views = [{}, {"top": 30}, {"min_prompts": 4, "top": 50}]
        kept = circuits(store, views)
        assert len(kept[0].edges) > 500
        assert kept == from_every_edge(store, views)


def test_pages_pack_and_unpack(monkeypatch):
    monkeypatch.setattr(circuit_index, "PAGE_LINKS", 2)  # pages of 2 links: 2 and 1
    rng = np.random.default_rng(0)
    table = links_frame(
        up=[3, 0, 7], down=[9, 9, 1], side=[0, 2, 4], prompts=[5, 1, 12],
        mean_share=rng.random(3), mean_weight=rng.normal(size=3), relevance=rng.random(3),
        **{f"sv{i}": [i, -1, 60 + i] for i in range(5)},
    )  # fmt: skip
    pages = [unpack(text) for text in pack_pages(table)]
    assert [len(page["up"]) for page in pages] == [2, 1]
    for name in ("up", "down", "side", "prompts", "mean_share", "mean_weight", "relevance"):
        back = np.concatenate([page[name] for page in pages])
        assert np.array_equal(back, table[name].to_numpy()), name
    svs = np.concatenate([page["svs"] for page in pages])
    assert svs.tolist() == [[0, 1, 2, 3, 4], [-1] * 5, [60, 61, 62, 63, 64]]


def from_the_cones(store):
    """Each head's redundancy with the kept measures removed (as for an older run)."""
    store.query("MATCH (r:RedundancyIndex) WHERE r.run = 'tiny' DELETE r")
    try:
        return [redundancy(store, to=head, run="tiny") for head in heads_for(store)]
    finally:
        write_index(store, "tiny")


def test_the_kept_measures_equal_those_of_each_cone(store):
    kept = [redundancy(store, to=head, run="tiny") for head in heads_for(store)]
    assert all(r.connectivity.prompts for r in kept)  # every head fires with edges in
    assert any(r.substitutes for r in kept)
    assert kept == from_the_cones(store)


def test_a_filter_reads_the_cone(store):
    whole = redundancy(store, to="2.1", run="tiny")
    prompt = next(iter(whole.connectivity.per_prompt))
    one = redundancy(store, to="2.1", run="tiny", prompt=prompt)
    assert one.connectivity.per_prompt == {prompt: whole.connectivity.per_prompt[prompt]}
    by_side = [redundancy(store, to="2.1", run="tiny", side=s) for s in ("query", "key")]
    assert all(r.connectivity.maximum <= whole.connectivity.maximum for r in by_side)


def test_the_kept_features_equal_those_of_the_edges(store):
    kept_heads = store.query("MATCH (u:FeatureIndex) WHERE u.run = 'tiny' RETURN u.head AS head")
    assert sorted(r["head"] for r in kept_heads) == sorted(HEADS[:-1])
    for side in ("any", "query", "key", "inhibit"):
        for head in [h for h in heads_for(store) if h != "logits"]:
            for top in (3, 100):  # the kept lines are parsed as far as top asks
                ask = {"head": head, "run": "tiny", "side": side, "top": top}
                assert features(store, **ask) == features(store, **ask, index=False)
    assert sum(len(features(store, head=h, run="tiny").features) for h in HEADS[:-1]) > 20
