"""A run traced on every side (value and inhibition included), stored and read back."""

import pytest

from headgraph.errors import QueryError
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.circuit import circuit, edge_detail
from headgraph.queries.features import features
from headgraph.queries.paths import paths
from headgraph.queries.store import open_store

EVERY = ("query", "key", "value", "inhibit")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    model = load_model("tiny-ioi")
    store = open_store(str(tmp_path_factory.mktemp("sides")))
    prompts = task_prompts(model, 48, seed=6)
    params = TraceParams(seeding="linear", sides=EVERY, baseline="mean")
    ingest(model, prompts, store=store, run="every", seeds=(), params=params, batch_size=16)
    yield store
    store.close()


def test_every_side_is_stored(store):
    rows = store.query("MATCH ()-[s:SIGNAL]->() RETURN DISTINCT s.side AS side")
    assert {r["side"] for r in rows} == set(EVERY)


def test_a_route_into_the_logits_runs_through_a_value_edge_from_the_embeddings(store):
    found = paths(store, to="logits", side="any", top=20, max_hops=3)
    assert any(h.side == "value" and h.upstream == "embed" for r in found.routes for h in r.hops), (
        found.text
    )
    into = paths(store, to="1.0", side="value", top=5)
    assert into.routes and all(r.hops[-1].side == "value" for r in into.routes), into.text


def test_an_inhibition_edge_sits_at_its_competitors_role(store):
    graph = circuit(store, min_prompts=3)
    inhibit = [e for e in graph.edges if e.side == "inhibit"]
    assert inhibit, "no inhibition edge in the circuit"
    assert any(e.source.endswith("@S1+1") for e in inhibit), [e.source for e in inhibit]
    detail = edge_detail(store, source=inhibit[0].source, target=inhibit[0].target, side="inhibit")
    assert len(detail.prompt_ids) >= 3


def test_value_edges_have_no_qk_features_and_say_so(store):
    with pytest.raises(QueryError, match="value edges move"):
        features(store, head="1.0", side="value")


def test_stored_relevance_is_the_traces_whatever_firings_carried_each_edge(store):
    from collections import Counter

    from headgraph.ingest.core.trace import trace

    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 48, seed=6)
    params = TraceParams(seeding="linear", sides=EVERY, baseline="mean")
    traced = Counter()
    for batch in trace(model, prompts, seeds=(), params=params, batch_size=16):
        for e in batch.edge_records():
            traced[(e.prompt_id, e.upstream.name, e.head_name, e.side, e.token)] += e.relevance
    stored = Counter()
    for r in store.query(
        "MATCH ()-[s:SIGNAL]->(f:Firing) RETURN f.prompt AS p, s.upstream AS up, "
        "f.head_name AS head, s.side AS side, s.token AS token, s.relevance AS relevance"
    ):
        stored[(r["p"], r["up"], r["head"], r["side"], r["token"])] += r["relevance"]
    assert stored.keys() == traced.keys()
    assert max(abs(stored[k] - traced[k]) for k in traced) < 1e-6
    assert sum(v > 0 for v in stored.values()) > len(stored) / 2


def test_the_circuit_ranks_and_filters_edges_by_relevance(store):
    every = circuit(store)
    kept = circuit(store, min_relevance=0.02)
    assert 0 < len(kept.edges) < len(every.edges)
    assert all(e.relevance >= 0.02 for e in kept.edges)
    assert {(e.source, e.target, e.side) for e in kept.edges} == {
        (e.source, e.target, e.side) for e in every.edges if e.relevance >= 0.02
    }
    ranked = [e.relevance for e in every.edges]
    assert ranked == sorted(ranked, reverse=True)
    # the run's aggregates hold the same relevance, per upstream component, head, side, role
    from collections import Counter

    summed = Counter()
    for e in every.edges:
        if e.target.split("@")[0] != "logits":
            up, role = e.source.split("@")
            role = "" if role.startswith("#") else role  # a token with no role
            summed[(up, e.target.split("@")[0], e.side, role)] += e.relevance
    carries = {
        (r["up"], r["head"], r["side"], r["role"]): r["relevance"]
        for r in store.query(
            "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.side <> 'logit' RETURN "
            "a.name AS up, b.name AS head, c.side AS side, c.role AS role, c.relevance AS relevance"
        )
    }
    assert carries.keys() == summed.keys()
    assert max(abs(carries[k] - summed[k]) for k in carries) < 1e-9


def test_compare_counts_only_the_relevant_edges_when_asked(store):
    from headgraph.queries.compare import compare

    every = compare(store, reference="tiny-ioi")
    relevant = compare(store, reference="tiny-ioi", min_relevance=0.02)
    # the card names query and key edges: value and inhibition edges are not judged by it
    assert every.edge_sides == ("query", "key")
    assert {side for *_, side in every.edges.extra} <= {"query", "key"}
    assert relevant.edges.predicted < every.edges.predicted
    assert relevant.edges.precision >= every.edges.precision


def test_exports_keep_every_side_even_where_two_join_the_same_nodes(store, tmp_path):
    import json

    import networkx as nx

    from headgraph.queries.export import export_run
    from headgraph.queries.graphs import prompt_graphs

    rows = store.query(
        "MATCH ()-[s:SIGNAL]->(f:Firing) RETURN DISTINCT f.prompt AS p, s.upstream AS up, "
        "s.token AS t, f.head_name AS h, f.dest AS d, s.side AS side"
    )
    expected = {(r["p"], f"{r['up']}@{r['t']}", f"{r['h']}@{r['d']}", r["side"]) for r in rows}
    graphs = prompt_graphs(store)
    got = {(p, a, b, k) for p, g in graphs.items() for a, b, k in g.edges(keys=True)}
    assert got == expected
    pairs = {(p, a, b) for p, a, b, _ in expected}
    assert len(pairs) < len(expected)  # some value and key edges share their two nodes
    export_run(store, format="graphml", out=tmp_path / "g")
    prompt = next(iter(graphs))
    path = tmp_path / "g" / "prompts" / f"{prompt}.graphml"
    loaded = nx.read_graphml(path, force_multigraph=True)
    assert loaded.number_of_edges() == graphs[prompt].number_of_edges()
    export_run(store, format="circuit-tracer", out=tmp_path / "ct")
    links = sum(
        len(json.loads(f.read_text())["links"])
        for f in (tmp_path / "ct").glob("*.json")
        if f.name != "graph-metadata.json"
    )
    assert links == len(expected)
