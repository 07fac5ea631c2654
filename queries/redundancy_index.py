"""Every head's redundancy kept ready: connectivity, criticality and substitutes.

:func:`~headgraph.queries.redundancy.redundancy` over a head's whole cone reads
and measures every per-prompt edge below it, so its cost grows with the run.
When a run finishes, the route index's build (:mod:`headgraph.queries.index_build`)
reads the run a layer at a time; each layer's edges and substitutes
(:func:`layer_edges`) are added here (:meth:`RedundancyTable.add`), which keeps the
edges as a compact route graph and each head's substitutes, then
measures every head in one pass (:func:`~headgraph.queries.route_graph.measure`)
and writes one ``RedundancyIndex`` node per head:

- ``connectivity``: base64 of little-endian int32, one per prompt of the run in
  the index's prompt order (sorted ids), -1 where the head has no edge in;
- ``criticality``: JSON ``[[component, critical prompts, prompts on a route], ...]``
  for the components critical somewhere;
- ``substitutes``: JSON ``[[side, singular vector, [[member, prompts], ...],
  prompts_any, prompts_all], ...]``, compressed where that makes it shorter
  (:func:`~headgraph.queries.packing.pack_text`).

A query without filters then reads one node.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np

from headgraph.queries.cone import LOGITS, Cone, Node
from headgraph.queries.packing import pack_text, unpack_text
from headgraph.queries.route_graph import Measures, RouteGraph, measure
from headgraph.queries.store import GraphStore, Rows
from headgraph.queries.substitutes import SubstituteGroup, substitute_groups

COLUMNS = ("key", "run", "head", "connectivity", "criticality", "substitutes")


@dataclass
class RedundancyTable:
    """A run's edges as a route graph, gathered layer by layer (:meth:`add`), and each
    head's measures (:meth:`rows`)."""

    ids: dict[str, int] = field(default_factory=dict)  # node key -> name id
    names: list[Node] = field(default_factory=list)
    edges: list[np.ndarray] = field(default_factory=list)  # [3, edges]: prompt, up, down
    substitutes: dict[str, tuple[SubstituteGroup, ...]] = field(default_factory=dict)

    def add(self, nodes: list[Node], edges: np.ndarray, substitutes: dict) -> None:
        """One layer's :func:`layer_edges`: ``edges`` ``[3, rows]`` (prompt, up, down) with
        the ends as indices into ``nodes`` (its cone's), and its heads' substitutes."""
        ids = np.array([self._id(node) for node in nodes], dtype=np.int64)
        self.edges.append(np.stack([edges[0], ids[edges[1]], ids[edges[2]]]))
        self.substitutes |= substitutes

    def _id(self, node: Node) -> int:
        if node.key not in self.ids:
            self.ids[node.key] = len(self.names)
            self.names.append(node)
        return self.ids[node.key]

    def rows(self, run: str, n_prompts: int) -> dict[str, Rows]:
        """The ``RedundancyIndex`` rows of every head with an edge into it."""
        table: Rows = {k: [] for k in COLUMNS}
        edges = np.concatenate(self.edges, axis=1) if self.edges else np.zeros((3, 0), np.int64)
        graph = RouteGraph.build(self.names, n_prompts, *edges)
        targets = sorted({n.component for n in self.names if not n.site})
        for head, found in measure(graph, targets).items():
            critical = np.flatnonzero(found.critical)
            table["key"].append(f"{run}/{head}")
            table["head"].append(head)
            connectivity = np.ascontiguousarray(found.connectivity, dtype="<i4").tobytes()
            table["connectivity"].append(base64.b64encode(connectivity).decode("ascii"))
            table["criticality"].append(
                json.dumps(
                    [
                        [found.components[c], int(found.critical[c]), int(found.present[c])]
                        for c in critical.tolist()
                    ]
                )
            )
            groups = self.substitutes.get(head, ()) if head != LOGITS else ()
            table["substitutes"].append(
                pack_text(
                    json.dumps(
                        [
                            [
                                g.side,
                                g.singular_vector,
                                [list(m) for m in g.members],
                                g.prompts_any,
                                g.prompts_all,
                            ]
                            for g in groups
                        ]
                    )
                )  # fmt: skip
            )
        table["run"] = [run] * len(table["key"])
        return {"RedundancyIndex": table}


def layer_edges(
    cone: Cone, prompts: np.ndarray, sparse_sets
) -> tuple[np.ndarray, dict[str, tuple[SubstituteGroup, ...]]]:
    """What :meth:`RedundancyTable.add` takes of one layer's cone (no target): its rows as
    ``[3, rows]`` (the run's index of the prompt, the up and down node ids) and its heads'
    substitute groups. ``prompts``: the run's index of each of the cone's prompts;
    ``sparse_sets``: :func:`~headgraph.queries.sparse_sets.row_sparse_sets` of the cone."""
    edge = cone.rows["edge"].to_numpy()
    prompt = prompts[cone.rows["prompt"].to_numpy()]
    edges = np.stack([prompt, cone.edge_up[edge], cone.edge_down[edge]]).astype(np.int64)
    into = np.ones(len(cone.edge_up), dtype=bool)
    return edges, substitute_groups(cone, into, sparse_sets)


def read_kept(
    store: GraphStore, run: str, head: str
) -> tuple[Measures, tuple[SubstituteGroup, ...]] | None:
    """A head's kept measures (connectivity by the index's prompt order; criticality
    for the components critical somewhere) and substitutes, or None where the run keeps
    none (it has not finished, or was indexed before they were kept)."""
    rows = store.query_if_present(
        "MATCH (r:RedundancyIndex) WHERE r.key = $key "
        "RETURN r.connectivity AS connectivity, r.criticality AS criticality, "
        "r.substitutes AS substitutes",
        {"key": f"{run}/{head}"},
    )
    if not rows:  # no edge into the head, or nothing kept
        any_kept = "MATCH (r:RedundancyIndex) WHERE r.run = $run RETURN r.key AS key LIMIT 1"
        if not store.query_if_present(any_kept, {"run": run}):
            return None
        rows = [{"connectivity": "", "criticality": "[]", "substitutes": "[]"}]
    row = rows[0]
    connectivity = np.frombuffer(base64.b64decode(row["connectivity"]), dtype="<i4")
    critical = json.loads(row["criticality"])
    measures = Measures(
        connectivity.astype(np.int64),
        [c for c, _, _ in critical],
        np.array([on for _, _, on in critical], dtype=np.int64),
        np.array([k for _, k, _ in critical], dtype=np.int64),
    )
    groups = tuple(
        SubstituteGroup(side, k, tuple((m, n) for m, n in members), any_, all_)
        for side, k, members, any_, all_ in json.loads(unpack_text(row["substitutes"]))
    )
    return measures, groups
