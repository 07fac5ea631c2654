"""Graphs that travel: each format is loaded back by its real consumer (circuit-tracer's own
schema, networkx's node-link and GraphML readers) and holds exactly the run's edges."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path

import networkx as nx
import pytest

from headgraph.queries.export import export_run
from headgraph.queries.graphs import prompt_graphs
from headgraph.queries.run import open_run
from tests.queries import handmade

WHEELS = Path(os.environ.get("HEADGRAPH_WHEELS", Path(__file__).parents[2] / "build" / "wheels"))


def circuit_tracer_schema():
    """circuit-tracer's pydantic models of the viewer's graph JSON, read from its wheel (the
    package itself pins transformers 4, so it is not installed beside headgraph)."""
    wheels = sorted(WHEELS.glob("circuit_tracer-*.whl"))
    if not wheels:
        pytest.skip(f"no circuit-tracer wheel in {WHEELS}: `bash .ci/run` downloads it")
    source = zipfile.ZipFile(wheels[-1]).read("circuit_tracer/frontend/graph_models.py")
    spec = importlib.util.spec_from_loader("circuit_tracer_graph_models", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    exec(compile(source, "circuit_tracer/frontend/graph_models.py", "exec"), module.__dict__)  # noqa: S102
    return module


def _edges(graph) -> set[tuple]:
    return {(a, b, d["side"], round(d["share"], 6)) for a, b, d in graph.edges(data=True)}


def test_each_prompt_graph_holds_its_traced_edges(hand_store):
    graphs = prompt_graphs(hand_store)
    assert set(graphs) == {"p1", "p2", "p3"}
    for prompt, graph in graphs.items():
        expected = {
            (f"{up}@{token}", f"{head}@{dest}", side, share)
            for p, up, token, _, head, dest, _, side, share in handmade.EDGES
            if p == prompt
        }
        assert _edges(graph) == expected
        assert not list(nx.isolates(graph))  # no untraced firing left standing alone
    node = graphs["p1"].nodes["1.0@2"]
    assert (node["kind"], node["layer"], node["head"], node["word"]) == ("head", 1, 0, "END")
    link = graphs["p1"].edges["0.0@2", "1.0@2", "query"]
    assert link["relevance"] == pytest.approx(0.4 / 2)
    assert json.loads(link["singular_vectors"]) == handmade.SPARSE[("p1", "1.0")]


def test_circuit_tracer_graphs_pass_its_schema(hand_store, tmp_path):
    schema = circuit_tracer_schema()
    folder = tmp_path / "graphs"
    summary = export_run(hand_store, format="circuit-tracer", out=folder)
    index = json.loads((folder / "graph-metadata.json").read_text())["graphs"]
    assert sorted(g["slug"] for g in index) == ["hand-p1", "hand-p2", "hand-p3"]
    links = 0
    for entry in index:
        document = json.loads((folder / f"{entry['slug']}.json").read_text())
        graph = schema.Model.model_validate(document)  # the viewer's own model of the file
        assert graph.metadata.prompt_tokens == ["A", "B", "END"]
        ids = {n.node_id for n in graph.nodes}
        assert all(link["source"] in ids and link["target"] in ids for link in graph.links)
        assert {n.feature_type for n in graph.nodes} <= {
            "attention head", "embedding", "query-key bias"}  # fmt: skip
        links += len(graph.links)
    assert links == len(handmade.EDGES) == summary.relationships


def test_node_link_json_loads_in_networkx_as_the_runs_circuit(hand_store, tmp_path):
    path = tmp_path / "circuit.json"
    export_run(hand_store, format="node-link", out=path)
    loaded = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    circuit = open_run(hand_store).to_networkx()
    assert sorted(loaded.edges(keys=True)) == sorted(circuit.edges(keys=True))
    assert loaded.graph["run"] == "hand"


def test_graphml_is_split_into_the_circuit_and_each_prompt(hand_store, tmp_path):
    folder = tmp_path / "graphml"
    export_run(hand_store, format="graphml", out=folder)
    circuit = nx.read_graphml(folder / "circuit.graphml", force_multigraph=True)
    assert circuit.number_of_edges() == open_run(hand_store).to_networkx().number_of_edges()
    p1 = nx.read_graphml(folder / "prompts" / "p1.graphml")
    assert p1.number_of_edges() == sum(1 for e in handmade.EDGES if e[0] == "p1")
    assert not list(nx.isolates(p1)) and p1.graph["text"] == "A B END"
    everything = tmp_path / "with-untraced"
    export_run(hand_store, format="graphml", out=everything, include_untraced=True)
    assert len(list((everything / "prompts").glob("*.graphml"))) == 3
