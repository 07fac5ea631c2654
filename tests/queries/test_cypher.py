"""Users' Cypher: writes refused unless asked, parameters passed as parameters."""

import pytest

from headgraph.queries.cypher import parse_params, run_cypher, write_clause
from headgraph.queries.selection import QueryError


@pytest.mark.parametrize(
    ("cypher", "clause"),
    [
        ("MATCH (n) RETURN n", None),
        ("MATCH (f:Firing) WHERE f.prompt = 'CREATE (x)' RETURN f", None),
        ('MATCH (f) WHERE f.text = "a SET b" RETURN f // DELETE later', None),
        ("MATCH (n) /* MERGE */ RETURN n.`set` AS s", None),
        ("MATCH (n) SET n.x = 1", "SET"),
        ("match (n) detach delete n", "DETACH"),
        ("CREATE (:Run {key: 'x'})", "CREATE"),
        ("MATCH (n) WITH n MERGE (m:M)", "MERGE"),
        ("CALL db.labels()", "CALL"),
        ("COPY Firing FROM 'x.csv'", "COPY"),
    ],
)
def test_write_clauses_are_found_outside_literals_and_comments(cypher, clause):
    assert write_clause(cypher) == clause


def test_params_are_json_or_text():
    assert parse_params(["k=3", "h=9.9", "xs=[1,2]", "t=true", 'q="a b"', "s=END"]) == {
        "k": 3,
        "h": 9.9,
        "xs": [1, 2],
        "t": True,
        "q": "a b",
        "s": "END",
    }
    with pytest.raises(QueryError, match="NAME=VALUE"):
        parse_params(["novalue"])
    with pytest.raises(QueryError, match="NAME=VALUE"):
        parse_params(["1x=2"])


def test_reads_run_with_parameters(hand_store):
    rows = run_cypher(
        hand_store,
        "MATCH (f:Firing) WHERE f.run = $run AND f.head_name = $head RETURN f.prompt AS p "
        "ORDER BY p",
        {"run": "hand", "head": "1.0"},
    )
    assert [r["p"] for r in rows] == ["p1", "p2"]
    # a parameter is a value, never Cypher: this matches nothing and deletes nothing
    # (no quote in it: FalkorDB's Bolt endpoint, the test server, fails on one)
    evil = "x OR 1=1 DETACH DELETE f"
    rows = run_cypher(
        hand_store, "MATCH (f:Firing) WHERE f.prompt = $p RETURN count(*) AS n", {"p": evil}
    )
    assert rows[0]["n"] == 0
    assert run_cypher(hand_store, "MATCH (f:Firing) RETURN count(*) AS n")[0]["n"] == 6


def test_writes_need_write_and_errors_are_explained(hand_store):
    with pytest.raises(QueryError, match="uses SET.*--write"):
        run_cypher(hand_store, "MATCH (r:Run) SET r.status = 'x'")
    assert run_cypher(hand_store, "MATCH (r:Run) RETURN r.status AS s")[0]["s"] == "complete"
    with pytest.raises(QueryError, match="the store refused the statement"):
        run_cypher(hand_store, "MATCH (n RETURN n")
    with pytest.raises(QueryError, match="empty"):
        run_cypher(hand_store, "  ")
    run_cypher(hand_store, "MATCH (r:Run) SET r.task = 'edited'", write=True)
    assert run_cypher(hand_store, "MATCH (r:Run) RETURN r.task AS t")[0]["t"] == "edited"
    run_cypher(hand_store, "MATCH (r:Run) SET r.task = 'hand'", write=True)
