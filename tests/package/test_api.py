"""The notebook API: a user's own HookedTransformer, traces and results as frames and graphs."""

from __future__ import annotations

import pytest
import torch

import headgraph as hg
from headgraph.ingest.model import processing_steps
from headgraph.ingest.model.adapter import new_hooked
from headgraph.ingest.tasks.ioi import ioi_prompts, word_tokenizer
from tests.conftest import small_hooked, small_model


@pytest.fixture(scope="module")
def prompts():
    return ioi_prompts(8, tokenizer=word_tokenizer(), seed=3)


def _edges(traced) -> list[tuple]:
    frame = traced.to_pandas()
    columns = ["prompt_id", "upstream", "layer", "head", "side", "token"]
    return sorted(map(tuple, frame[columns].itertuples(index=False)))


def test_an_unprocessed_model_is_processed_on_a_copy_and_traces_like_the_processed_one(prompts):
    raw = small_hooked(seed=5)
    before = {k: v.clone() for k, v in raw.state_dict().items()}
    assert processing_steps(raw)  # LayerNorm not folded, weights not centred
    mine = hg.trace(raw, prompts, seeds="2.*", seed_roles="END:*", tokenizer=word_tokenizer())
    processed = hg.trace(small_model(seed=5), prompts, seeds="2.*", seed_roles="END:*")
    assert _edges(mine) and _edges(mine) == _edges(processed)
    after = raw.state_dict()  # the user's model is untouched
    assert raw.cfg.normalization_type == "LN"
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_processed_model_is_used_as_it_is():
    model = small_model(seed=1)
    assert processing_steps(model.hooked) == []
    again = hg.Model.from_hooked(model.hooked, tokenizer=model.tokenizer)
    assert again.hooked is model.hooked


def test_models_the_method_cannot_trace_are_refused_with_the_reason():
    alibi = new_hooked(n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=20, n_ctx=8,
                       attn_only=True, positional_embedding_type="alibi")  # fmt: skip
    with pytest.raises(hg.ModelError, match="uses alibi positions.*Supported: GPT-2"):
        hg.load_model(alibi, tokenizer=word_tokenizer())
    with pytest.raises(hg.ModelError, match="has no tokenizer: pass tokenizer="):
        hg.load_model(small_hooked())
    with pytest.raises(hg.ModelError, match="cannot trace a dict"):
        hg.load_model({})


def test_a_trace_converts_to_frames_and_a_graph(prompts):
    model = small_model()
    traced = hg.trace(model, prompts, seeds="2.*", seed_roles="END:*", batch_size=4)
    edges = [e for batch in traced for e in batch.edge_records()]
    frame = traced.to_pandas()
    assert len(frame) == len(edges) > 0
    assert set(frame["side"]) <= {"query", "key", "value", "inhibit"}
    assert len(traced.to_pandas("firings")) == sum(len(b.firing_records()) for b in traced)
    graph = traced.to_networkx()
    triples = {(e.upstream.name, e.head_name, e.side) for e in edges}
    assert {(a, b, k) for a, b, k in graph.edges(keys=True)} == triples
    assert all(1 <= d["prompts"] <= len(prompts) for *_, d in graph.edges(data=True))
    assert traced.batches[0].to_pandas().shape[1] == frame.shape[1]
    summed = sum(d["relevance"] for *_, d in graph.edges(data=True)) * len(prompts)
    assert summed == pytest.approx(sum(e.relevance for e in edges)) and summed > 0


def test_a_stored_run_and_query_results_convert(tmp_path):
    model = hg.load_model("tiny-ioi")
    done = hg.ingest(model, n_prompts=24, store=tmp_path / "db", run="api")
    assert done.run == "api" and done.edges > 0
    with hg.open_store(tmp_path / "db", read_only=True) as store:
        run = hg.open_run(store)
        circuit = run.to_pandas()
        assert (
            run.name == "api"
            and len(circuit)
            == store.query("MATCH ()-[c:CARRIES]->() WHERE c.run = 'api' RETURN count(c) AS n")[0][
                "n"
            ]
        )
        assert run.to_networkx().number_of_edges() == len(circuit)
        assert len(run.to_pandas("signals")) == done.edges
        routes = hg.paths(store, to="1.0", top=3)
        table = routes.to_pandas()
        assert list(table["route"]) == [r.text for r in routes.routes]
        assert routes.to_networkx().number_of_edges() >= 1
        found = hg.features(store, head="1.0", top=2)
        assert list(found.to_pandas()["sv"]) == [f.name for f in found.features]
        assert found.to_networkx().has_node("1.0")
        assert list(hg.compare(store).to_pandas()["over"]) == ["heads", "edges"]
        assert hg.cypher(store, "MATCH (r:Run) RETURN r.key AS k") == [{"k": "api"}]
        with pytest.raises(hg.QueryError, match="write"):
            hg.cypher(store, "CREATE (:Run {key: 'x'})")
