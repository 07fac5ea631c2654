"""A run as graphs that open where people look: circuit-tracer's viewer, networkx, GraphML.

- **Per prompt** (:func:`prompt_graphs`): a ``networkx.MultiDiGraph`` for each prompt, whose
  nodes are components at token positions (``1.0@13``: head 1.0's output at token
  13; ``embed@3``, ``pos_embed@3``, ``mlp2@7``...) and whose edges are the prompt's
  traced edges (``SIGNAL``, keyed by side: a value and a key edge can join the same
  two nodes), with their side, weight, share, relevance, the downstream
  firing's singular vectors and terms, and the edge's causal effect when
  ``headgraph verify`` measured one. Untraced firings are left out unless asked.
- **circuit-tracer** (:func:`write_circuit_tracer`): a folder of per-prompt graph
  JSON files in the schema circuit-tracer's local viewer and Neuronpedia read
  (``metadata``, ``qParams``, ``nodes`` with ``node_id``, ``layer``, ``ctx_idx``,
  ``feature_type``..., ``links`` with ``source``, ``target``, ``weight``), with the
  ``graph-metadata.json`` index the viewer lists them from. Heads are nodes at
  their token positions (``feature_type`` ``attention head``), the embeddings are
  ``embedding`` nodes at layer ``E``.
- **node-link** (:func:`write_node_link`): the run's aggregate circuit as networkx
  node-link JSON (``nx.node_link_graph(data, edges="edges")`` loads it).
- **GraphML** (:func:`write_graphml`): a folder with the aggregate circuit
  (``circuit.graphml``) and one graph per prompt (``prompts/ID.graphml``), apart,
  instead of one graph that mixes the model, the aggregate and every prompt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headgraph.names import Component
from headgraph.queries.effects import effects_by_edge
from headgraph.queries.notes import label_texts
from headgraph.queries.run import open_run
from headgraph.queries.selection import stored_prompts
from headgraph.queries.store import GraphStore

if TYPE_CHECKING:
    import networkx as nx

SIGNALS = (
    "MATCH ()-[s:SIGNAL]->(f:Firing) WHERE f.run = $run RETURN f.prompt AS prompt, "
    "s.upstream AS upstream, s.token AS token, s.side AS side, s.weight AS weight, "
    "s.share AS share, coalesce(s.relevance, 0.0) AS relevance, f.head_name AS head, "
    "f.dest AS dest, f.source AS source, "
    "f.svs AS svs, f.terms AS terms, f.attention AS attention"
)
FIRINGS = (
    "MATCH (f:Firing) WHERE f.run = $run RETURN f.prompt AS prompt, f.head_name AS head, "
    "f.dest AS dest, f.source AS source, f.attention AS attention, f.traced AS traced"
)


def node_id(component: str, token: int) -> str:
    """A component's output at a token, ``1.0@13``."""
    return f"{component}@{token}"


def prompt_graphs(
    store: GraphStore, run: str | None = None, *, include_untraced: bool = False
) -> dict[str, nx.MultiDiGraph]:
    """One graph per prompt of the run (see the module docstring), by prompt id."""
    import networkx as nx

    ref = open_run(store, run).ref
    effects = effects_by_edge(store, ref.key)
    named = label_texts(store, ref.model)
    graphs: dict[str, nx.MultiDiGraph] = {}
    words_of: dict[str, list[str]] = {}
    roles_of: dict[str, dict[int, str]] = {}  # token -> its role (the first listed)
    for p in stored_prompts(store, ref.key):
        words_of[p["id"]] = p["words"] or [str(t) for t in p["tokens"]]
        roles_of[p["id"]] = {i: role for role, i in reversed(list(p["roles"].items()))}
        graphs[p["id"]] = nx.MultiDiGraph(
            run=ref.key, model=ref.model, prompt=p["id"], text=p["text"],
            tokens=json.dumps(p["tokens"]), words=json.dumps(words_of[p["id"]]),
        )  # fmt: skip

    def add(prompt: str, component: str, token: int) -> str:
        graph, name = graphs[prompt], node_id(component, token)
        if name not in graph:
            c, words = Component.parse(component), words_of[prompt]
            graph.add_node(
                name, component=component, kind=c.kind, layer=c.layer, head=c.head, token=token,
                word=words[token] if token < len(words) else "",
                role=roles_of[prompt].get(token, ""),
                **({"label": named[component]} if component in named else {}),
            )  # fmt: skip
        return name

    for s in store.query(SIGNALS, {"run": ref.key}):
        graph = graphs[s["prompt"]]
        source = add(s["prompt"], s["upstream"], int(s["token"]))
        target = add(s["prompt"], s["head"], int(s["dest"]))
        effect = effects.get((s["upstream"], s["head"], s["side"]))
        if graph.has_edge(source, target, key=s["side"]):  # another copy: its relevance adds
            graph.edges[source, target, s["side"]]["relevance"] += float(s["relevance"])
            continue
        graph.add_edge(
            source, target, key=s["side"], side=s["side"], weight=float(s["weight"]),
            share=float(s["share"]), relevance=float(s["relevance"]),
            firing=f"{s['head']} {s['dest']}->{s['source']}", attention=float(s["attention"]),
            singular_vectors=json.dumps([int(k) for k in s["svs"]]),
            terms=json.dumps([float(x) for x in s["terms"]]),
            **({"effect": float(effect["difference"])} if effect else {}),
            **({"label": named[edge]} if (edge := f"{s['upstream']}->{s['head']}:{s['side']}")
               in named else {}),
        )  # fmt: skip
    for f in store.query(FIRINGS, {"run": ref.key}):
        graph = graphs[f["prompt"]]
        name = node_id(f["head"], int(f["dest"]))
        if name in graph or include_untraced:
            add(f["prompt"], f["head"], int(f["dest"]))
            graph.nodes[name].setdefault("fires_on", [])
            graph.nodes[name]["fires_on"].append(int(f["source"]))
    for graph in graphs.values():  # GraphML holds no lists
        for _, data in graph.nodes(data=True):
            if "fires_on" in data:
                data["fires_on"] = json.dumps(sorted(data["fires_on"]))
    return graphs


def write_node_link(store: GraphStore, path: Path, run: str | None = None) -> tuple[int, int]:
    """The run's aggregate circuit as node-link JSON; returns (nodes, edges) written."""
    import networkx as nx

    graph = open_run(store, run).to_networkx()
    path.write_text(json.dumps(nx.node_link_data(graph, edges="edges")))
    return graph.number_of_nodes(), graph.number_of_edges()


def write_graphml(
    store: GraphStore, folder: Path, run: str | None = None, *, include_untraced: bool = False
) -> tuple[int, int]:
    """``circuit.graphml`` and ``prompts/ID.graphml``; returns (nodes, edges) written."""
    import networkx as nx

    folder.mkdir()
    circuit = open_run(store, run).to_networkx()
    for *_, data in circuit.edges(keys=True, data=True):
        data["singular_vectors"] = json.dumps(data["singular_vectors"])
    nx.write_graphml(circuit, folder / "circuit.graphml")
    (folder / "prompts").mkdir()
    nodes, edges = circuit.number_of_nodes(), circuit.number_of_edges()
    for prompt, graph in prompt_graphs(store, run, include_untraced=include_untraced).items():
        nx.write_graphml(graph, folder / "prompts" / f"{_slug(prompt)}.graphml")
        nodes, edges = nodes + graph.number_of_nodes(), edges + graph.number_of_edges()
    return nodes, edges


def write_circuit_tracer(
    store: GraphStore, folder: Path, run: str | None = None
) -> tuple[int, int]:
    """One circuit-tracer graph JSON per prompt, and ``graph-metadata.json``; returns
    (nodes, links) written."""
    ref = open_run(store, run).ref
    folder.mkdir()
    index, nodes, links = [], 0, 0
    for prompt, graph in prompt_graphs(store, ref.key).items():
        document = circuit_tracer_graph(graph, slug=_slug(f"{ref.key}-{prompt}"))
        (folder / f"{document['metadata']['slug']}.json").write_text(json.dumps(document))
        index.append(document["metadata"])
        nodes, links = nodes + len(document["nodes"]), links + len(document["links"])
    (folder / "graph-metadata.json").write_text(json.dumps({"graphs": index}, indent=2))
    return nodes, links


FEATURE_TYPES = {
    "head": "attention head", "embed": "embedding", "pos_embed": "embedding", "mlp": "mlp",
    "attn_bias": "attention bias", "qk_bias": "query-key bias",
}  # fmt: skip


def circuit_tracer_graph(graph: nx.DiGraph, *, slug: str) -> dict[str, Any]:
    """One prompt's graph in circuit-tracer's graph JSON schema."""
    words = json.loads(graph.graph["words"])
    tokens = json.loads(graph.graph["tokens"])
    ids, nodes = {}, []
    for name, data in graph.nodes(data=True):
        kind, layer, head, token = data["kind"], data["layer"], data["head"], data["token"]
        node = {
            "node_id": _viewer_id(kind, layer, head, token, tokens),
            "feature": _pair(max(layer, 0), max(head, 0)),
            "layer": "E" if layer < 0 else str(layer),
            "ctx_idx": token,
            "feature_type": FEATURE_TYPES[kind],
            "clerp": _label(data, words),
        }
        node["jsNodeId"] = node["node_id"]
        ids[name] = node["node_id"]
        nodes.append(node)
    links = [
        {"source": ids[a], "target": ids[b], "weight": d["weight"], "share": d["share"],
         "relevance": d["relevance"], "side": d["side"],
         "singular_vectors": json.loads(d["singular_vectors"]),
         **{k: d[k] for k in ("effect", "label") if k in d}}
        for a, b, d in graph.edges(data=True)
    ]  # fmt: skip
    metadata = {"slug": slug, "scan": graph.graph["model"], "transcoder_list": [],
                "prompt_tokens": words, "prompt": graph.graph["text"], "node_threshold": None,
                "schema_version": 1}  # fmt: skip
    q_params = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "",
                "sg_pos": ""}  # fmt: skip
    return {"metadata": metadata, "qParams": q_params, "nodes": nodes, "links": links}


def _viewer_id(kind: str, layer: int, head: int, token: int, tokens: list[int]) -> str:
    if kind == "embed":
        return f"E_{tokens[token]}_{token}"
    if kind == "pos_embed":
        return f"P_{token}_{token}"
    letter = {"head": "", "mlp": "M", "attn_bias": "B", "qk_bias": "Q"}[kind]
    return f"{letter}{layer}_{max(head, 0)}_{token}"


def _label(data: dict, words: list[str]) -> str:
    """The viewer's caption: a person's label first, then what the node is."""
    word = words[data["token"]] if data["token"] < len(words) else ""
    fires = f", fires on {data['fires_on']}" if "fires_on" in data else ""
    named = f"{data['label']}: " if "label" in data else ""
    return f"{named}{data['component']} at {data['token']} ({word!r}){fires}"


def _pair(x: int, y: int) -> int:
    """A unique integer for two non-negative integers (Cantor's pairing)."""
    return (x + y) * (x + y + 1) // 2 + y


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-") or "prompt"
