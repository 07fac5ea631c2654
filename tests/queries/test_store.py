"""The stores (embedded, and Neo4j over Bolt), written by the ingest job, read back with Cypher."""

import os
import signal
import subprocess
import sys
import time

import pytest

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.trace import trace
from headgraph.ingest.jobs.aggregates import carries_rows, edge_partials
from headgraph.ingest.jobs.graph_rows import batch_rows, edge_count
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.store import StoreError, open_store
from tests.queries.conftest import empty

RUN = "t32"


@pytest.fixture(scope="module")
def tiny():
    model = load_model("tiny-ioi")
    return model, task_prompts(model, 32, seed=5)


def fresh_store(kind, request, tmp_path_factory):
    """An empty store of one backend."""
    if kind == "embedded":
        return open_store(str(tmp_path_factory.mktemp("store")))
    return empty(request.getfixturevalue("bolt_store"))


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def stored(request, tiny, tmp_path_factory):
    model, prompts = tiny
    store = fresh_store(request.param, request, tmp_path_factory)
    result = ingest(model, prompts, store=store, run=RUN, seeds=default_seeds(model), batch_size=8)
    yield store, result
    if store.kind == "embedded":
        store.close()


def signature(store, run):
    """Everything a run stored, as sorted rows (no timestamps)."""
    return {
        "firings": store.query(
            "MATCH (f:Firing) WHERE f.run = $run RETURN f.key AS k, "
            "f.svs AS svs, f.traced AS t ORDER BY k",
            {"run": run},
        ),
        "signals": store.query(
            "MATCH (a)-[s:SIGNAL]->(b:Firing) WHERE b.run = $run RETURN "
            "a.key AS ak, b.key AS bk, s.side AS side, s.weight AS w "
            "ORDER BY ak, bk, side",
            {"run": run},
        ),
        "carries": store.query(
            "MATCH (a)-[c:CARRIES]->(b) WHERE c.run = $run RETURN a.key AS ak, "
            "b.key AS bk, c.side AS side, c.role AS role, c.prompts AS n, "
            "c.svs AS svs, c.sv_counts AS counts ORDER BY ak, bk, side, role",
            {"run": run},
        ),
        "prompts": store.query(
            "MATCH (p:Prompt) WHERE p.run = $run RETURN p.key AS k ORDER BY k", {"run": run}
        ),
        "run": {k: v for k, v in store.run_info(run).items() if k not in ("started", "finished")},
    }


def test_the_store_holds_exactly_what_tracing_produced(tiny, stored):
    model, prompts = tiny
    store, result = stored
    expected_firings = expected_signals = 0
    for batch, start in enumerate(range(0, 32, 8)):  # batches of 8: no mean-baseline merge
        (traced,) = trace(
            model, prompts[start : start + 8], seeds=default_seeds(model), batch_size=8
        )
        rows = batch_rows(traced, run=RUN, batch=batch, tokenizer=model.tokenizer)
        expected_firings += len(rows["Firing"]["key"])
        expected_signals += edge_count(rows)
    assert result.firings == expected_firings > 0
    assert result.edges == expected_signals > 0
    info = store.run_info(RUN)
    assert info["status"] == "complete" and sorted(info["done_batches"]) == [0, 1, 2, 3]
    assert len(signature(store, RUN)["prompts"]) == 32


def test_every_firing_to_firing_edge_is_a_route_in_one_prompt(stored):
    store, _ = stored
    routes = store.query(
        "MATCH (a:Firing)-[s:SIGNAL]->(b:Firing) WHERE b.run = $run RETURN "
        "a.dest AS a_dest, a.prompt AS a_prompt, a.head_name AS a_head, "
        "s.token AS token, s.upstream AS upstream, "
        "b.prompt AS b_prompt, b.dest AS b_dest, b.source AS b_source, "
        "s.side AS side",
        {"run": RUN},
    )
    assert routes
    for r in routes:
        assert r["a_dest"] == r["token"] and r["a_prompt"] == r["b_prompt"]
        assert r["a_head"] == r["upstream"]
        if r["side"] != "inhibit":  # an inhibition edge is at the competitor's token
            assert r["token"] == (r["b_dest"] if r["side"] == "query" else r["b_source"])
        else:
            assert r["token"] != r["b_source"]
    # Multi-hop paths need no filters: a two-hop path is one prompt's route.
    two_hops = store.query(
        "MATCH (a:Firing)-[:SIGNAL]->(b:Firing)-[:SIGNAL]->(c:Firing) "
        "WHERE c.run = $run RETURN a.prompt AS pa, c.prompt AS pc",
        {"run": RUN},
    )
    assert all(r["pa"] == r["pc"] for r in two_hops)


def test_aggregates_count_distinct_prompts_per_edge(stored):
    store, _ = stored
    for c in store.query(
        "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run AND "
        "c.side <> 'inhibit' RETURN a.name AS up, b.name AS head, c.side AS side, "
        "c.role AS role, c.prompts AS n, c.svs AS svs, c.sv_counts AS counts LIMIT 20",
        {"run": RUN},
    ):
        rows = store.query(
            "MATCH ()-[s:SIGNAL]->(f:Firing) WHERE f.run = $run AND s.upstream = $up AND "
            "f.head_name = $head AND s.side = $side RETURN f.prompt AS p, "
            "CASE WHEN s.side = 'query' THEN f.dest_role ELSE f.source_role END AS role, "
            "f.svs AS svs",
            {"run": RUN, "up": c["up"], "head": c["head"], "side": c["side"]},
        )
        rows = [r for r in rows if (r["role"] or "") == c["role"]]
        assert c["n"] == len({r["p"] for r in rows}) > 0
        assert sum(c["counts"]) == sum(len(r["svs"]) for r in rows)
        assert c["counts"] == sorted(c["counts"], reverse=True)


def test_rerunning_a_run_changes_nothing(tiny, stored):
    model, prompts = tiny
    store, _ = stored
    before = signature(store, RUN)
    again = ingest(model, prompts, store=store, run=RUN, seeds=default_seeds(model), batch_size=8)
    assert again.resumed == again.batches == 4
    assert signature(store, RUN) == before


def test_aggregates_kept_per_batch_equal_those_of_every_edge_read_back(tiny, stored):
    """The CARRIES summed from the batches' partials are those of the per-prompt edges;
    a run whose batches have no partials (an older headgraph's) is aggregated from its
    edges, to the same result."""
    model, prompts = tiny
    store, _ = stored
    carries = signature(store, RUN)["carries"]
    partials = store.query("MATCH (p:Partial) WHERE p.run = $run RETURN p.batch AS b", {"run": RUN})
    assert {p["b"] for p in partials} == {0, 1, 2, 3}
    from_edges = carries_rows(edge_partials(store.signal_rows(RUN)), model=model.key, run=RUN,
                              n_prompts=len(prompts))  # fmt: skip
    assert len(from_edges["from"]) == len(carries) > 0
    mean_weight = store.query(
        "MATCH (a)-[c:CARRIES]->(b) WHERE c.run = $run RETURN a.key AS ak, b.key AS bk, "
        "c.side AS side, c.role AS role, c.mean_weight AS w, c.relevance AS r "
        "ORDER BY ak, bk, side, role",
        {"run": RUN},
    )
    expected = sorted(zip(from_edges["from"], from_edges["to"], from_edges["side"],
                          from_edges["role"], from_edges["prompts"], from_edges["svs"],
                          from_edges["sv_counts"], from_edges["mean_weight"],
                          from_edges["relevance"], strict=True))  # fmt: skip
    for c, m, e in zip(carries, mean_weight, expected, strict=True):
        assert (c["ak"], c["bk"], c["side"], c["role"], c["n"], c["svs"], c["counts"]) == e[:7]
        assert (m["w"], m["r"]) == pytest.approx(e[7:], rel=1e-5, abs=1e-6)

    store.query("MATCH (p:Partial) WHERE p.run = $run DETACH DELETE p", {"run": RUN})
    ingest(model, prompts, store=store, run=RUN, seeds=default_seeds(model), batch_size=8)
    assert signature(store, RUN)["carries"] == carries


def test_a_run_name_reused_with_other_parameters_is_refused(tiny, stored):
    model, prompts = tiny
    store, _ = stored
    with pytest.raises(StoreError, match="already exists with other parameters"):
        ingest(
            model,
            prompts,
            store=store,
            run=RUN,
            seeds=default_seeds(model),
            batch_size=8,
            params=TraceParams(edge_frac=0.9),
        )
    with pytest.raises(ValueError, match="must not contain"):
        ingest(model, prompts, store=store, run="a|b", seeds=default_seeds(model))
    assert store.run_info("a|b") is None


def test_the_same_run_gives_the_same_answers_on_every_backend(stored, request, tmp_path_factory):
    store, _ = stored
    if store.kind != "neo4j":
        pytest.skip("compares the Neo4j backend with the embedded one")
    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 32, seed=5)
    embedded = fresh_store("embedded", request, tmp_path_factory)
    ingest(model, prompts, store=embedded, run=RUN, seeds=default_seeds(model), batch_size=8)
    a, b = signature(embedded, RUN), signature(store, RUN)
    embedded.close()
    assert a.keys() == b.keys()
    for table in a:
        assert close(a[table], b[table]), table


def close(a, b) -> bool:
    """Equal rows, floats to 1e-5 (the Bolt test server keeps 6 decimals)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-5
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def test_an_unreachable_server_is_a_one_line_error():
    with pytest.raises(StoreError, match="cannot reach the Neo4j server"):
        open_store("bolt://127.0.0.1:1")


@pytest.mark.slow
def test_an_ingest_killed_mid_run_resumes_to_the_same_graph(tmp_path):
    command = [
        sys.executable,
        "-m",
        "headgraph",
        "ingest",
        "--prompts",
        "32",
        "--batch-size",
        "2",
        "--run",
        "killed",
    ]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run([*command, "--store", str(clean)], check=True, capture_output=True)

    process = subprocess.Popen(
        [*command, "--store", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    done = []
    while time.monotonic() < deadline and len(done) < 3 and process.poll() is None:
        time.sleep(0.2)
        try:
            reader = open_store(str(killed), read_only=True)
        except StoreError:
            continue
        try:
            info = reader.run_info("killed")
        except RuntimeError:  # tables not created yet
            info = None
        finally:
            reader.close()
        done = (info or {}).get("done_batches") or []
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= len(done) < 16, "the kill must land mid-run"

    subprocess.run([*command, "--store", str(killed)], check=True, capture_output=True)
    a, b = open_store(str(clean), read_only=True), open_store(str(killed), read_only=True)
    try:
        assert signature(a, "killed") == signature(b, "killed")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "address",
    ["neo4j+ssc://127.0.0.1:1", "Bolt://127.0.0.1:1", "BOLT+S://127.0.0.1:1",
     "NEO4J://127.0.0.1:1", "bolt+ssc://127.0.0.1:1"],
)  # fmt: skip
def test_every_neo4j_scheme_in_any_case_goes_to_the_server(address, tmp_path, monkeypatch):
    from headgraph.queries.store import is_server_address

    monkeypatch.chdir(tmp_path)
    assert is_server_address(address)
    with pytest.raises(StoreError, match="cannot reach the Neo4j server"):
        open_store(address)
    assert list(tmp_path.iterdir()) == []  # no folder named after the address


def test_a_password_in_an_address_is_never_shown(monkeypatch):
    with pytest.raises(StoreError) as caught:
        open_store("bolt://neo4j:Secret@127.0.0.1:1")
    assert "Secret" not in str(caught.value) and "neo4j:***@" in str(caught.value)
    with pytest.raises(StoreError, match="not a usable Neo4j address"):
        open_store("bolt://127.0.0.1:notaport")


def test_a_second_ingest_of_a_run_being_written_is_refused_on_a_server(tiny, bolt_uri, request):
    model, prompts = tiny
    store = empty(request.getfixturevalue("bolt_store"))
    seeds = default_seeds(model)
    refusals = []

    def meanwhile(n_prompts, edges):  # while the first ingest is between two batches
        if refusals:
            return
        with open_store(bolt_uri) as other, pytest.raises(StoreError) as caught:
            ingest(model, prompts, store=other, run="twice", seeds=seeds, batch_size=8)
        refusals.append(str(caught.value))

    first = ingest(model, prompts, store=store, run="twice", seeds=seeds, batch_size=8,
                   progress=meanwhile)  # fmt: skip
    assert refusals and "is being written by another ingest" in refusals[0]
    alone = ingest(model, prompts, store=store, run="alone", seeds=seeds, batch_size=8)
    assert first.firings == alone.firings  # nothing was written twice
    again = ingest(model, prompts, store=store, run="twice", seeds=seeds, batch_size=8)
    assert again.resumed == again.batches  # finished and released: a rerun resumes nothing


@pytest.mark.slow
def test_shards_write_a_run_to_a_server_themselves(tiny, bolt_uri, local_ray, request):
    """Each shard opens the server and writes its batches; the driver records them done."""
    import json

    from tests.ingest.test_shards import same_graph

    model, prompts = tiny
    store = request.getfixturevalue("bolt_store")
    signatures = []
    for run, shards in (("one-process", 1), ("sharded", 2)):
        ingest(model, prompts, store=store, run=run, seeds=default_seeds(model), batch_size=8,
               shards=shards)  # fmt: skip
        named = json.dumps(signature(store, run)).replace(f'"{run}|', '"R|')
        signatures.append(json.loads(named.replace(f'"{run}"', '"R"')))
    same_graph(*signatures)


def test_a_model_is_known_by_its_content_not_its_name(tmp_path):
    from headgraph.ingest.model import build_model
    from headgraph.ingest.tasks.ioi import ioi_prompts, word_tokenizer
    from tests.conftest import SMALL

    one, other = (
        build_model(SMALL, tokenizer=word_tokenizer(), seed=s, name="mine") for s in (0, 1)
    )
    again = build_model(SMALL, tokenizer=word_tokenizer(), seed=0, name="mine")
    assert one.key == again.key and one.key != other.key and one.key.startswith("mine@")
    prompts = ioi_prompts(4, tokenizer=word_tokenizer(), seed=1)
    seeds = default_seeds(build_model(SMALL, tokenizer=word_tokenizer(), name="random:x"))
    with open_store(tmp_path / "db") as store:
        ingest(one, prompts, store=store, run="a", seeds=seeds, batch_size=4)
        ingest(other, prompts, store=store, run="b", seeds=seeds, batch_size=4)
        models = store.query("MATCH (m:Model) RETURN m.key AS key ORDER BY key")
        assert sorted(m["key"] for m in models) == sorted([one.key, other.key])
        sigma = store.query(
            "MATCH (v:SingularVector) WHERE v.model = $m AND v.head_name = '0.0' AND "
            "v.`index` = 0 RETURN v.sigma AS s", {"m": other.key},
        )[0]["s"]  # fmt: skip
        assert sigma == pytest.approx(float(other.qk.S[0, 0, 0]), rel=1e-6)
        with pytest.raises(StoreError, match="already exists with model mine@"):
            ingest(other, prompts, store=store, run="a", seeds=seeds, batch_size=4)


def test_a_store_an_older_headgraph_wrote_is_upgraded_when_first_read(tmp_path):
    """Relevance came after stores existed: a reader adds the column (0 for old edges)."""
    import ladybug

    from headgraph.queries.circuit import circuit
    from headgraph.queries.selection import stored_prompts
    from tests.queries import handmade

    with open_store(str(tmp_path)) as store:
        handmade.write(store)
        before = circuit(store)
    db = ladybug.Database(str(tmp_path / "graph.lbug"))
    conn = ladybug.Connection(db)
    for table in ("SIGNAL", "CARRIES"):  # as the schema was before relevance
        conn.execute(f"ALTER TABLE {table} DROP relevance")
    for column in ("words", "counterfactual"):  # and before the prompts' words
        conn.execute(f"ALTER TABLE Prompt DROP {column}")
    conn.execute("DROP TABLE Partial")  # and before the per-batch aggregates
    conn.close()
    db.close()
    with open_store(str(tmp_path), read_only=True) as store:
        assert store.query("MATCH (p:Partial) RETURN count(p) AS n") == [{"n": 0}]
        found = circuit(store)
        assert {(e.source, e.target, e.side) for e in found.edges} == {
            (e.source, e.target, e.side) for e in before.edges
        }
        assert {e.relevance for e in found.edges} == {0.0} != {e.relevance for e in before.edges}
        prompts = stored_prompts(store, handmade.RUN)
        assert len(prompts) == 3 and all(p["words"] == p["counterfactual"] == [] for p in prompts)
    with open_store(str(tmp_path)) as store:  # and a writer can add runs with relevance
        assert store.query("MATCH ()-[s:SIGNAL]->() RETURN max(s.relevance) AS r")[0]["r"] == 0
