"""Every Cypher example in docs/schema.md runs on every backend and returns rows."""

import re
from pathlib import Path

import pytest

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.notes import save_circuit, set_label
from headgraph.queries.store import open_store
from tests.queries.conftest import empty

DOC = Path(__file__).parents[2] / "docs" / "schema.md"
EXAMPLES = re.findall(r"```cypher\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def store(request, tmp_path_factory):
    model = load_model("tiny-ioi")
    if request.param == "embedded":
        store = open_store(str(tmp_path_factory.mktemp("docs")))
    else:
        store = empty(request.getfixturevalue("bolt_store"))
    ingest(
        model,
        task_prompts(model, 24, seed=2),
        store=store,
        run="docs",
        seeds=(),
        params=TraceParams(seeding="linear"),  # its Prediction nodes answer an example too
        batch_size=12,
    )
    set_label(store, target="1.0", text="name mover", run="docs")
    into = store.query(
        "MATCH (a:Component)-[c:CARRIES]->(b:Component {name: '1.0'}) WHERE c.run = 'docs' "
        "RETURN a.name AS up, c.side AS side ORDER BY c.prompts DESC LIMIT 2"
    )
    edges = [f"{r['up']}-1.0:{r['side']}" for r in into]
    save_circuit(store, name="into 1.0", edges=edges, run="docs", note="strongest edges")
    yield store
    if store.kind == "embedded":
        store.close()


def test_the_doc_has_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("cypher", EXAMPLES, ids=[e.split("\n")[0][:40] for e in EXAMPLES])
def test_each_example_runs_and_answers(store, cypher):
    head = "1.0"
    prompt = store.query(
        "MATCH (f:Firing) WHERE f.run = 'docs' AND f.head_name = $h AND "
        "f.traced RETURN f.prompt AS p LIMIT 1",
        {"h": head},
    )[0]["p"]
    params = {"run": "docs", "head": head, "prompt": prompt}
    used = {name: value for name, value in params.items() if f"${name}" in cypher}
    rows = store.query(cypher, used)
    assert rows, cypher
