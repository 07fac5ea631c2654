"""The route index: `paths` read through it answers exactly as `paths` over the whole cone."""

import numpy as np
import pytest
from click.testing import CliRunner

from headgraph.explorer.cli.main import main
from headgraph.ingest.core.records import parse_seeds
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries import inbound
from headgraph.queries.cone import load_cone
from headgraph.queries.inbound import FAR, Packed, has_index
from headgraph.queries.index_build import write_index
from headgraph.queries.indexed_cone import IndexedCone
from headgraph.queries.paths import paths
from headgraph.queries.selection import QueryError, resolve_run
from headgraph.queries.store import open_store
from headgraph.queries.store.base import index_deletes
from tests.conftest import small_model
from tests.queries.conftest import tiny_run

QUESTIONS = [
    {"to": "1.0"},
    {"to": "1.1", "top": 25},
    {"to": "1.0", "role": "END", "min_prompts": 3},
    {"to": "1.0", "side": "key"},
    {"to": "1.0", "score": "min", "max_hops": 2},
    {"to": "1.0", "from_": "0.1"},
    {"to": "1.0", "from_": "embed", "max_hops": 3},
    {"to": "0.2", "max_hops": 1, "top": 40},
]


def answers(store, questions, **extra):
    return [paths(store, run="tiny", **q, **extra) for q in questions]


def without_index(store, questions, **extra):
    store.write({}, delete=index_deletes("tiny"))
    assert not has_index(store, "tiny")
    try:
        return answers(store, questions, **extra)
    finally:
        write_index(store, "tiny")


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def store(request, tmp_path_factory):
    store = tiny_run(request, tmp_path_factory, seeds=default_seeds(load_model("tiny-ioi")))
    yield store
    if store.kind == "embedded":
        store.close()


def test_an_ingest_writes_the_index(store):
    assert has_index(store, "tiny")
    pages = store.query("MATCH (p:InboundPage) WHERE p.run = 'tiny' RETURN count(p) AS n")
    assert pages[0]["n"] > 0


def test_paths_through_the_index_equal_paths_over_the_whole_cone(store):
    indexed = answers(store, QUESTIONS)
    assert all(a.routes for a in indexed)
    assert indexed == without_index(store, QUESTIONS)


def test_one_prompt_through_the_index_equals_its_cone(store):
    ids = store.query("MATCH (p:Prompt) WHERE p.run = 'tiny' RETURN p.id AS id ORDER BY p.id")
    questions = [{"to": "1.0", "prompt": p["id"]} for p in ids[:12]]
    indexed = answers(store, questions)
    assert sum(len(a.routes) for a in indexed) >= 10  # 1.0 fires in some of them
    assert all(r.prompts == 1 for a in indexed for r in a.routes)
    assert indexed == without_index(store, questions)


def test_small_pages_give_the_same_routes(store, monkeypatch):
    before = answers(store, QUESTIONS[:3])
    monkeypatch.setattr(inbound, "PAGE_ROWS", 5)  # many pages per node
    write_index(store, "tiny")
    pages = store.query("MATCH (i:Inbound) WHERE i.run = 'tiny' RETURN i.pages AS pages")
    assert max(len(r["pages"]) for r in pages) > 3
    assert answers(store, QUESTIONS[:3]) == before
    monkeypatch.undo()
    write_index(store, "tiny")


def test_small_headers_give_the_same_routes(store, monkeypatch):
    before = answers(store, QUESTIONS)
    monkeypatch.setattr(inbound, "FIRST_EDGES", 2)  # most edges in InboundEdges chunks
    write_index(store, "tiny")
    chunks = store.query("MATCH (e:InboundEdges) WHERE e.run = 'tiny' RETURN e.key AS key")
    assert any(r["key"].endswith("/e3") for r in chunks)  # 2 + 4 + 8 + 16 edges, and more
    assert answers(store, QUESTIONS) == before
    monkeypatch.undo()
    write_index(store, "tiny")


def test_an_index_written_unpacked_by_an_older_headgraph_reads_the_same(store, monkeypatch):
    from headgraph.queries import packing
    from headgraph.queries.circuit import circuit
    from headgraph.queries.features import features
    from headgraph.queries.redundancy import redundancy

    def read_all():
        return (
            answers(store, QUESTIONS),
            circuit(store, run="tiny", top=50),
            [redundancy(store, to=h, run="tiny") for h in ("1.0", "1.1", "0.2")],
            [features(store, head=h, run="tiny") for h in ("1.0", "1.1", "0.2")],
        )

    def packed_values():
        pages = store.query("MATCH (p:InboundPage) WHERE p.run = 'tiny' RETURN p.rows AS v")
        uses = store.query("MATCH (u:FeatureIndex) WHERE u.run = 'tiny' RETURN u.use AS v")
        return sum(r["v"].startswith(packing.MARK) for r in pages + uses)

    packed = read_all()
    assert packed_values() > 0
    monkeypatch.setattr(packing, "SMALL", 1 << 62)  # nothing compressed: as written before
    write_index(store, "tiny")
    assert packed_values() == 0
    assert read_all() == packed
    monkeypatch.undo()
    write_index(store, "tiny")


def test_a_busy_random_model_through_the_index(tmp_path):
    model = small_model(seed=1)
    prompts = task_prompts(model, 12, seed=0, task="ioi")
    with open_store(str(tmp_path)) as store:
        top_layer = f"{model.n_layers - 1}.*"
        seeds = parse_seeds(top_layer, "END:*", n_heads=model.n_heads)
        ingest(model, prompts, store=store, run="tiny", seeds=seeds)
        heads = [f"{model.n_layers - 1}.{h}" for h in range(model.n_heads)]
        questions = [{"to": h, "max_hops": 3} for h in heads]
        questions += [{"to": heads[0], "from_": "0.0"}, {"to": heads[1], "score": "min"}]
        indexed = answers(store, questions)
        assert sum(len(a.routes) for a in indexed) > 20
        assert indexed == without_index(store, questions)
        # the index's reach texts give the whole cone's fewest hops, node for node
        ref = resolve_run(store, "tiny")
        cone, lazy = load_cone(store, ref, heads[0]), IndexedCone(store, ref, heads[0])
        for source in ("0.0", "embed", f"{model.n_layers - 2}.1"):
            exact, stored = cone.reach(source), lazy.reach(source)
            hops = [
                (min(exact(i), FAR), min(stored(lazy._node(n.key)), FAR))
                for i, n in enumerate(cone.nodes)
            ]
            assert all(a == b for a, b in hops), source
            assert sum(a < FAR for a, _ in hops) > 3  # some nodes are in reach


def test_a_page_packs_and_unpacks():
    rng = np.random.default_rng(0)
    packed = Packed(
        np.array([0, 2, 5]),
        np.array([1, 4, 0, 2, 9]),
        rng.random(5),
        np.array([0, 3, 3, 4, 6, 8]),
        np.array([2, 0, 7, 1, 5, 3, 3, 60]),
    )
    back = Packed.unpack(packed.pack(), 2)
    for field in ("offsets", "prompts", "shares", "sv_offsets", "svs"):
        assert np.array_equal(getattr(back, field), getattr(packed, field)), field


def test_indexing_an_unfinished_or_unknown_run_is_refused(store):
    store.query("MATCH (r:Run) WHERE r.key = 'tiny' SET r.status = 'running'")
    try:
        with pytest.raises(QueryError, match="resume its ingest"):
            write_index(store, "tiny")
    finally:
        store.query("MATCH (r:Run) WHERE r.key = 'tiny' SET r.status = 'complete'")
    with pytest.raises(QueryError, match="no run named"):
        write_index(store, "nothing")


def test_the_cli_indexes_a_run(tmp_path):
    model = load_model("tiny-ioi")
    with open_store(str(tmp_path)) as store:
        ingest(
            model,
            task_prompts(model, 8, seed=1),
            store=store,
            run="tiny",
            seeds=default_seeds(model),
        )
        store.write({}, delete=index_deletes("tiny"))
    result = CliRunner().invoke(main, ["index", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "indexed the edges into" in result.output
    with open_store(str(tmp_path), read_only=True) as store:
        assert has_index(store, "tiny")


def test_long_values_go_to_a_bolt_server_in_requests_that_fit():
    import json

    from headgraph.queries.store.neo4j_store import appends, chunks

    rows = {"key": ["a", "b"], "ups": ["x" * 9000, "short"], "sides": [list(range(900)), [1]]}
    rest: list = []
    sent = [row for chunk in chunks(rows, 3000, rest=rest) for row in chunk]
    assert sent[1] == {"key": "b", "ups": "short", "sides": [1]}
    rebuilt = dict(sent[0])
    for cypher, params in appends("Inbound", rest, 3000):
        assert len(json.dumps(params)) <= 3100 and "SET n.`" in cypher
        name = cypher.split("SET n.`")[1].split("`")[0]
        rebuilt[name] = rebuilt[name] + params["part"]
    assert rebuilt == {"key": "a", "ups": "x" * 9000, "sides": list(range(900))}
