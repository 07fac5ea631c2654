"""Every Cypher statement the Neo4j backend can send is valid Neo4j 5 Cypher, by Neo4j's parser.

The parser is the npm package ``@neo4j-cypher/language-support`` (installed in
``tests/cypher`` by ``bash .ci/run``: ``npm ci``).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from unittest.mock import patch

import pytest

from headgraph.queries.store import GraphStore, open_store
from headgraph.queries.store.neo4j_store import (
    Neo4jStore,
    appends,
    node_statement,
    rel_statement,
)
from headgraph.queries.store.schema import NODES, RELS, neo4j_ddl

CHECKER = Path(__file__).parents[1] / "cypher"
DOC = Path(__file__).parents[2] / "docs" / "schema.md"


def parser_errors(statements: list[str]) -> list[list[str]]:
    if shutil.which("node") is None or not (CHECKER / "node_modules").exists():
        pytest.skip("Neo4j's Cypher parser is not installed: (cd tests/cypher && npm ci)")
    done = subprocess.run(
        ["node", str(CHECKER / "check.js")],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        check=True,
        cwd=CHECKER,
    )
    return json.loads(done.stdout)


class Recorder(GraphStore):
    """The shared store logic with the Neo4j dialect, recording what it would send."""

    APPEND_DONE = Neo4jStore.APPEND_DONE
    ON_FINISH = Neo4jStore.ON_FINISH

    def __init__(self):
        self.sent: list[str] = []

    def query(self, cypher, params=None):
        self.sent.append(cypher)
        return []

    def write(self, tables, *, delete=(), then=()):
        self.sent += [cypher for cypher, _ in (*delete, *then)]


def statements() -> list[str]:
    recorder = Recorder()
    recorder.run_info("r")
    recorder.runs()
    recorder.has_model("m")
    recorder.start_run({"key": "r"}, None)
    recorder.write_batch("r", 0, {})
    recorder.signal_rows("r")
    recorder.finish_run("r", {}, {"status": "complete", "edges": 1})
    generated = [node_statement(n.name) for n in NODES]
    generated += [rel_statement(r.name, a, b) for r in RELS for a, b in r.pairs]
    generated += [f"CREATE INDEX FOR (n:{n.name}) ON (n.key)" for n in NODES]
    long_values = [("k", "ups", "x" * 5000), ("k", "sides", list(range(2000)))]
    generated += [cypher for cypher, _ in appends("Inbound", long_values)]
    docs = re.findall(r"```cypher\n(.*?)```", DOC.read_text(), flags=re.S)
    return [*neo4j_ddl(), *generated, *recorder.sent, *docs]


class Recording(GraphStore):
    """A real store that records every statement the query layer sends it."""

    def __init__(self, inner):
        self.inner, self.sent = inner, []

    def query(self, cypher, params=None):
        self.sent.append(cypher)
        return self.inner.query(cypher, params)

    def frame(self, cypher, params=None, *, columns=()):
        self.sent.append(cypher)
        return self.inner.frame(cypher, params, columns=columns)

    def write(self, tables, *, delete=(), then=()):
        self.sent += [cypher for cypher, _ in (*delete, *then)]
        self.inner.write(tables, delete=delete, then=then)


def query_layer_statements(folder) -> list[str]:
    """Every statement paths, redundancy, features, circuit, compare, effects and export send."""
    from headgraph.queries import (
        circuit,
        compare,
        effects,
        export,
        features,
        inbound,
        index_build,
        paths,
        redundancy,
        stats,
    )
    from headgraph.queries.cypher import run_cypher
    from tests.queries import handmade

    with open_store(str(folder / "store")) as inner:
        handmade.write(inner)
        s = Recording(inner)
        paths.paths(s, to="1.0", from_="0.0", prompt="p1", index=False)
        with patch.object(inbound, "FIRST_EDGES", 1):  # headers of one edge: chunks too
            index_build.write_index(s, "hand")  # and the route index's reads
        paths.paths(s, to="1.0", from_="0.0", prompt="p1")
        circuit.circuit(s, top=3)  # the run's kept links
        redundancy.redundancy(s, to="1.0", role="END")
        features.features(s, head="0.0")
        features.singular_vector(s, sv="0.0:1")
        circuit.circuit(s, prompt="p2")
        circuit.edge_detail(s, source="0.0@END", target="1.0@END", side="query")
        circuit.component_detail(s, node="0.0@END")
        stats.sparse_set_sizes(s)
        stats.singular_vector_usage(s, heads=["1.0"])
        compare.compare(s, reference="tiny-ioi")
        effects.strongest_edges(s, "hand", 3)
        row = dict.fromkeys(effects.COLUMNS, 0.0) | {"upstream": "0.0", "head": "1.0"}
        row |= {"side": "query", "mode": "global", "boost": False, "metric": "ioi"}
        effects.write_effects(s, "hand", [row | {"prompts": 2, "measured": "now"}])
        run_cypher(s, "MATCH (r:Run) RETURN r.key AS k")
        export.export_run(s, format="json", out=folder / "run.json")
        return sorted(set(s.sent))


def test_every_query_the_query_layer_sends_is_valid_neo4j_cypher(tmp_path):
    sent = query_layer_statements(tmp_path)
    assert len(sent) > 25
    for label in ("InboundPage", "InboundEdges", "CircuitPage"):
        assert any(f":{label})" in s for s in sent), label
    problems = {s: e for s, e in zip(sent, parser_errors(sent), strict=True) if e}
    assert not problems, json.dumps(problems, indent=1)


def test_every_statement_is_valid_neo4j_cypher():
    sent = statements()
    assert len(sent) > 30
    problems = {s: e for s, e in zip(sent, parser_errors(sent), strict=True) if e}
    assert not problems, json.dumps(problems, indent=1)


def test_the_parser_does_reject_invalid_cypher():
    errors = parser_errors(["MATCH (n:Firing WHERE RETURN n", "MATCH (n) RETURN n"])
    assert errors[0] and not errors[1]
