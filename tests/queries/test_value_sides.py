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
