# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""Traces as tables and graphs, for notebooks: pandas data frames and a networkx circuit.

A :class:`Trace` holds the batches that :func:`headgraph.trace` traced. Its
edges and firings convert to data frames (one row per record, the fields of
:class:`~headgraph.ingest.core.records.Edge` and ``Firing``), and its edges
aggregate into a circuit graph: components as nodes, and one edge per
(upstream, head, side) with the number of prompts it occurs in, its mean share and
its relevance (its share of the prediction, per prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from headgraph.errors import InputError
from headgraph.frames import records_frame

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from headgraph.ingest.core.trace import BatchTrace


EDGE_COLUMNS = ("prompt_id", "upstream", "layer", "head", "side", "token", "role", "dest",
                "source", "weight", "share", "relevance", "singular_vectors", "terms")  # fmt: skip
FIRING_COLUMNS = ("prompt_id", "layer", "head", "dest", "source", "dest_role", "source_role",
                  "attention", "score", "singular_vectors", "terms", "traced")  # fmt: skip


def batch_frame(batch: BatchTrace, what: str = "edges") -> pd.DataFrame:
    """One batch's ``edges`` or ``firings`` as a data frame."""
    if what == "edges":
        return records_frame(batch.edge_records(), EDGE_COLUMNS)
    if what == "firings":
        return records_frame(batch.firing_records(), FIRING_COLUMNS)
    raise InputError(f"what={what!r}: use edges or firings")


@dataclass(frozen=True)
class Trace:
    """Every batch of one trace, with conversions.

    Attributes:
        batches: The traced batches, in prompt order.
        model: The model's name.
    """

    batches: tuple[BatchTrace, ...]
    model: str

    def __iter__(self) -> Iterator[BatchTrace]:
        return iter(self.batches)

    @property
    def prompts(self) -> int:
        return sum(len(b.prompts) for b in self.batches)

    def to_pandas(self, what: str = "edges") -> pd.DataFrame:
        """Every ``edges`` or ``firings`` record as one data frame."""
        import pandas as pd

        frames = [batch_frame(b, what) for b in self.batches]
        return pd.concat(frames, ignore_index=True) if frames else batch_frame_empty(what)

    def to_networkx(self) -> nx.MultiDiGraph:
        """The traced circuit: components as nodes; per (upstream, head, side) one edge with
        ``prompts`` (how many prompts it occurs in), ``mean_share``, ``relevance`` (summed
        over the prompts and divided by their number) and ``side``."""
        return circuit_graph(self.to_pandas("edges"), n_prompts=self.prompts, model=self.model)


def batch_frame_empty(what: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=list(EDGE_COLUMNS if what == "edges" else FIRING_COLUMNS))


def circuit_graph(edges: pd.DataFrame, *, n_prompts: int, model: str) -> nx.MultiDiGraph:
    """Per-prompt edges (a frame of :data:`EDGE_COLUMNS`) aggregated into a circuit graph."""
    import networkx as nx

    graph = nx.MultiDiGraph(model=model, prompts=n_prompts)
    if edges.empty:
        return graph
    heads = edges["layer"].astype(str) + "." + edges["head"].astype(str)
    grouped = edges.assign(downstream=heads).groupby(["upstream", "downstream", "side"])
    for key, group in grouped:
        upstream, downstream, side = cast(tuple[str, str, str], key)
        prompts = group["prompt_id"].nunique()
        graph.add_edge(
            upstream,
            downstream,
            key=side,
            side=side,
            prompts=int(prompts),
            share_of_prompts=prompts / max(n_prompts, 1),
            mean_share=float(group["share"].mean()),
            mean_weight=float(group["weight"].mean()),
            relevance=float(group["relevance"].sum()) / max(n_prompts, 1),
        )
    return graph
