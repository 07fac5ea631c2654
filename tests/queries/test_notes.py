"""Labels and saved circuits: kept in the store, checked against the model and run, queryable in
Cypher, carried by every export."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from headgraph.queries.cypher import run_cypher
from headgraph.queries.export import export_run
from headgraph.queries.notes import (
    heads_labelled,
    labels,
    remove_label,
    save_circuit,
    saved_circuits,
    set_label,
)
from headgraph.queries.run import open_run
from headgraph.queries.selection import QueryError


@pytest.fixture(scope="module")
def noted(hand_store):
    set_label(hand_store, target="1.0", text="name mover", author="ada")
    set_label(hand_store, target="1.0:0", text="reads names", author="ada")
    set_label(hand_store, target="0.0-1.0:query", text="S inhibition", author="ada")
    save_circuit(hand_store, name="diamond", edges=["embed-0.0:key", "0.0-1.0:query"],
                 note="one route", author="ada")  # fmt: skip
    return hand_store


def test_labels_name_components_singular_vectors_and_edges(noted):
    found = {(label.target, label.kind, label.text) for label in labels(noted)}
    assert found == {("1.0", "component", "name mover"), ("1.0:0", "singular_vector",
                     "reads names"), ("0.0->1.0:query", "edge", "S inhibition")}  # fmt: skip
    set_label(noted, target="L1H0", text="the name mover", author="bob")  # the same head
    assert [(x.text, x.author) for x in labels(noted) if x.target == "1.0"] == [
        ("the name mover", "bob")]  # fmt: skip
    set_label(noted, target="1.0", text="name mover", author="ada")


@pytest.mark.parametrize(
    ("target", "message"),
    [("9.9", "head 9.9 does not exist"), ("1.0:7", "indices 0 .. 1"), ("nope", "not a component"),
     ("0.0-9.0:key", "head 9.0 does not exist")],
)  # fmt: skip
def test_unknown_targets_are_refused(noted, target, message):
    with pytest.raises(QueryError, match=message):
        set_label(noted, target=target, text="x")


def test_a_label_is_removed_and_cypher_reads_them(noted):
    set_label(noted, target="0.1", text="temporary")
    assert remove_label(noted, target="0.1") and not remove_label(noted, target="0.1")
    rows = run_cypher(noted, "MATCH (l:Label) WHERE l.kind = 'component' "
                      "RETURN l.target AS head, l.text AS text")  # fmt: skip
    assert rows == [{"head": "1.0", "text": "name mover"}]


def test_saved_circuits_hold_edges_of_the_run(noted):
    (saved,) = saved_circuits(noted)
    assert (saved.name, saved.edges, saved.note) == (
        "diamond", ("embed->0.0:key", "0.0->1.0:query"), "one route")  # fmt: skip
    with pytest.raises(QueryError, match="has no edge 0.1->0.0:key"):
        save_circuit(noted, name="bad", edges=["0.1-0.0:key"])
    rows = run_cypher(noted, "MATCH (c:SavedCircuit) RETURN c.name AS name, c.edges AS edges")
    assert rows == [{"name": "diamond", "edges": ["embed->0.0:key", "0.0->1.0:query"]}]


def test_the_heads_a_label_names_in_every_run(noted):
    assert heads_labelled(noted, "name mover") == [
        {"head": "1.0", "model": "hand", "runs": ["hand"], "in_every_run": True}]  # fmt: skip


def test_every_export_carries_the_labels(noted, tmp_path):
    circuit = open_run(noted).to_networkx()
    assert circuit.nodes["1.0"]["label"] == "name mover"
    assert {d.get("label") for a, b, d in circuit.edges(data=True) if (a, b) == ("0.0", "1.0")
            and d["side"] == "query"} == {"S inhibition"}  # fmt: skip
    export_run(noted, format="node-link", out=tmp_path / "c.json")
    loaded = nx.node_link_graph(json.loads((tmp_path / "c.json").read_text()), edges="edges")
    assert loaded.nodes["1.0"]["label"] == "name mover"
    export_run(noted, format="graphml", out=tmp_path / "g")
    p1 = nx.read_graphml(tmp_path / "g" / "prompts" / "p1.graphml")
    assert p1.nodes["1.0@2"]["label"] == "name mover"
    assert p1.edges["0.0@2", "1.0@2"]["label"] == "S inhibition"
    export_run(noted, format="circuit-tracer", out=tmp_path / "ct")
    document = json.loads((tmp_path / "ct" / "hand-p1.json").read_text())
    (head,) = [n for n in document["nodes"] if n["node_id"] == "1_0_2"]
    assert head["clerp"].startswith("name mover: 1.0 at 2")
    export_run(noted, format="json", out=tmp_path / "all.json")
    stored = json.loads((tmp_path / "all.json").read_text())["nodes"]
    assert {n["label"] for n in stored} >= {"Label", "SavedCircuit"}
