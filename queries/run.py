# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""A stored run as a notebook object: its record, its circuit as a data frame or a graph.

``open_run(store)`` is the newest run; ``Run.to_pandas()`` reads its aggregate
circuit (the ``CARRIES`` relationships: one row per upstream component, head,
side and token role) and ``Run.to_networkx()`` returns the same as a graph.
``to_pandas("signals")`` gives the per-prompt edges and ``"firings"`` every firing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from headgraph.errors import QueryError
from headgraph.queries.selection import RunRef, resolve_run
from headgraph.queries.store import GraphStore

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

TABLES = {
    "circuit": (
        "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run "
        "RETURN a.name AS upstream, b.name AS head, c.side AS side, c.role AS role, "
        "c.prompts AS prompts, c.share_of_prompts AS share_of_prompts, "
        "c.mean_weight AS mean_weight, c.svs AS singular_vectors, "
        "coalesce(c.relevance, 0.0) AS relevance ORDER BY prompts DESC, "
        "upstream, head, side, role",
        ("upstream", "head", "side", "role", "prompts", "share_of_prompts", "mean_weight",
         "singular_vectors", "relevance"),
    ),
    "signals": (
        "MATCH ()-[s:SIGNAL]->(f:Firing) WHERE f.run = $run RETURN f.prompt AS prompt, "
        "s.upstream AS upstream, f.head_name AS head, s.side AS side, s.token AS token, "
        "s.weight AS weight, s.share AS share, coalesce(s.relevance, 0.0) AS relevance, "
        "f.dest AS dest, f.source AS source, f.svs AS singular_vectors",
        ("prompt", "upstream", "head", "side", "token", "weight", "share", "relevance",
         "dest", "source", "singular_vectors"),
    ),
    "firings": (
        "MATCH (f:Firing) WHERE f.run = $run RETURN f.prompt AS prompt, f.head_name AS head, "
        "f.dest AS dest, f.source AS source, f.dest_role AS dest_role, "
        "f.source_role AS source_role, f.attention AS attention, f.score AS score, "
        "f.svs AS singular_vectors, f.terms AS terms, f.traced AS traced",
        ("prompt", "head", "dest", "source", "dest_role", "source_role", "attention", "score",
         "singular_vectors", "terms", "traced"),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Run:
    """A run in a store: what :func:`open_run` returns.

    Attributes:
        store: The store it lives in.
        ref: Its record (name, model, prompts, status, the model's shape).
    """

    store: GraphStore
    ref: RunRef

    @property
    def name(self) -> str:
        return self.ref.key

    def to_pandas(self, table: str = "circuit") -> pd.DataFrame:
        """``circuit`` (the aggregate edges), ``signals`` (per-prompt edges) or ``firings``."""
        if table not in TABLES:
            raise QueryError(f"table {table!r}: use one of {', '.join(TABLES)}")
        cypher, columns = TABLES[table]
        data = self.store.frame(cypher, {"run": self.ref.key}, columns=columns)
        return data.loc[:, list(columns)] if not data.empty else data

    def to_networkx(self) -> nx.MultiDiGraph:
        """The aggregate circuit: components as nodes, one edge per (side, role) with
        ``prompts``, ``share_of_prompts``, ``mean_weight``, ``singular_vectors`` and
        ``relevance`` (the share of the prediction, per prompt); people's
        labels (``headgraph label``) as ``label`` on nodes and edges."""
        import networkx as nx

        from headgraph.queries.notes import label_texts

        graph = nx.MultiDiGraph(run=self.ref.key, model=self.ref.model, prompts=self.ref.prompts)
        named = label_texts(self.store, self.ref.model)
        for row in self.to_pandas("circuit").to_dict("records"):
            up, head = row.pop("upstream"), row.pop("head")
            row["singular_vectors"] = [int(k) for k in row["singular_vectors"]]
            edge_label = named.get(f"{up}->{head}:{row['side']}")
            graph.add_edge(up, head, key=f"{row['side']}@{row['role']}", **row,
                           **({"label": edge_label} if edge_label else {}))  # fmt: skip
        for node in graph.nodes:
            if node in named:
                graph.nodes[node]["label"] = named[node]
        return graph


def open_run(store: GraphStore, run: str | None = None) -> Run:
    """The named run of ``store`` (default: the newest).

    Raises:
        QueryError: no such run (the message lists those there are).
    """
    return Run(store, resolve_run(store, run))
