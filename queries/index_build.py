"""Building a run's route index, a layer to a worker process.

When a run finishes, the ingest writes its route index
(:mod:`~headgraph.queries.inbound`) and, beside it, the run's circuit
(:mod:`~headgraph.queries.circuit_index`), every head's redundancy
(:mod:`~headgraph.queries.redundancy_index`) and feature use
(:mod:`~headgraph.queries.feature_use`). All of it is read from the run's edges one
layer at a time (the edges into that layer's firings; then the seeds' edges into
the logits), and each layer's part depends on that layer's edges alone: its nodes'
headers and pages, its links, its route-graph edges and substitutes, its heads'
feature use. So this process reads the layers one after the other, and hands each
to a process forked as it is read (:func:`~headgraph.workers.forked_each`), which
turns it into its :class:`LayerPart` while the next layers are read; the parts are
added in layer order (a node's ``reach`` needs the layers below it). The store's
reads, the adding, every head's max-flows (shared out to workers too) and the
writing stay here; the same rows come out with one worker or many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from itertools import chain

import numpy as np
import pandas as pd

from headgraph.queries.circuit_index import LinkTable, layer_links
from headgraph.queries.cone import (
    FIRING_COLUMNS,
    FIRINGS,
    Node,
    build_cone,
    edge_frames,
    prediction_edges,
)
from headgraph.queries.feature_use import use_frames, use_of
from headgraph.queries.inbound import TABLES, Reach, components, node_rows, prompt_ids
from headgraph.queries.packing import pack_all
from headgraph.queries.redundancy_index import RedundancyTable, layer_edges
from headgraph.queries.selection import QueryError, RunRef, resolve_run
from headgraph.queries.sparse_sets import row_sparse_sets
from headgraph.queries.store import GraphStore, Rows
from headgraph.queries.store.base import index_deletes
from headgraph.workers import forked_each, usable_workers

SHARED_ROWS = 2**16  # a run whose first layer has fewer edges is built here, no fork
SHARED_CPUS = 4  # with fewer usable CPUs too (two processes on two CPUs: 0.94x-1.22x)


@dataclass(frozen=True)
class LayerRead:
    """One layer's edges and firings as read from the store."""

    edges: pd.DataFrame  # the cone's EDGES rows into the layer's firings, with ``site``
    firings: pd.DataFrame  # the cone's FIRING_COLUMNS
    use: tuple[pd.DataFrame, pd.DataFrame] | None  # what use_of takes; None: the logits


@dataclass(frozen=True)
class LayerPart:
    """What one layer adds to the index, computed from its :class:`LayerRead` alone."""

    nodes: list[Node]  # the layer's cone's nodes: the ids below index them
    reach: tuple[np.ndarray, np.ndarray, np.ndarray]  # what Reach.add takes
    tables: dict[str, Rows]  # node_rows: Inbound (less reach), InboundPage, InboundEdges
    links: tuple[set[str], tuple[pd.DataFrame, list[str]] | None]  # layer_links
    edges: np.ndarray  # [3, rows] layer_edges: prompt, up, down
    substitutes: dict  # layer_edges: each head's substitute groups
    use: dict[str, str]  # head -> its FeatureIndex text


def read_layer(store: GraphStore, run: RunRef, layer: int | None) -> LayerRead:
    """The edges into one layer's firings (``None``: the seeds' edges into the logits)."""
    if layer is None:
        edges = pd.concat(prediction_edges(store, run, None), ignore_index=True)
        return LayerRead(edges, pd.DataFrame(columns=list(FIRING_COLUMNS)), None)
    where, params = " AND f.layer = $in_layer", {"run": run.key, "in_layer": layer}
    edges = pd.concat(edge_frames(store, where, params), ignore_index=True)
    firings = store.frame(FIRINGS.format(where=where), params, columns=FIRING_COLUMNS)
    return LayerRead(
        edges, firings, use_frames(store, run.key, "f.layer = $layer", {"layer": layer})
    )


def layer_part(read: LayerRead, run: RunRef, index: dict[str, int]) -> LayerPart:
    """One layer's part of the index (pure: a worker computes it); ``index``: each prompt
    id's place in the run's sorted ids."""
    cone = build_cone(read.edges, read.firings, run=run, target=None)
    sparse_sets = row_sparse_sets(cone)
    prompts = np.array([index[p] for p in cone.prompt_ids], dtype=np.int64)  # [cone's]
    tables, reach = node_rows(cone, prompts, sparse_sets)
    edges, substitutes = layer_edges(cone, prompts, sparse_sets)
    use = {} if read.use is None else {h: u.to_text() for h, u in use_of(*read.use).items()}
    links = layer_links(cone, *sparse_sets)
    return LayerPart(cone.nodes, reach, tables, links, edges, substitutes, use)


def index_rows(store: GraphStore, run: RunRef, *, workers: int | None = None) -> dict[str, Rows]:
    """The run's route index and what is kept beside it, as rows to write: ``Inbound``,
    ``InboundPage``, ``InboundEdges``, ``CircuitIndex``, ``CircuitPage``,
    ``RedundancyIndex`` and ``FeatureIndex``.

    Args:
        store: The store holding the run.
        run: The run.
        workers: Processes for the layers' parts (default: :func:`usable_workers`;
            none where fewer than :data:`SHARED_CPUS` are usable or the run's first
            layer has under :data:`SHARED_ROWS` edges). Memory holds the layers read
            and not yet added: one more than the workers.
    """
    index = {p: i for i, p in enumerate(prompt_ids(store, run.key))}
    build = _Build(run, Reach(components(store, run.model)))
    layers = [*range(run.n_layers), None]  # None: the seeds' edges into the logits
    reads = (read_layer(store, run, layer) for layer in layers)  # each as its worker starts
    first = next(reads)
    if workers is None:
        cpus = usable_workers()
        workers = cpus if cpus >= SHARED_CPUS and len(first.edges) >= SHARED_ROWS else 1
    tasks = (partial(layer_part, read, run, index) for read in chain([first], reads))
    del first  # held by its task alone, until its part is added
    for part in forked_each(tasks, workers=workers):
        build.add(part)
    return build.rows(len(index))


@dataclass
class _Build:
    """The layers' parts, added in layer order (:meth:`add`), then the rows (:meth:`rows`)."""

    run: RunRef
    reach: Reach
    nodes: list[dict[str, Rows]] = field(default_factory=list)  # each part's node_rows
    links: LinkTable = field(default_factory=LinkTable)
    redundancy: RedundancyTable = field(default_factory=RedundancyTable)
    use: Rows = field(default_factory=lambda: {k: [] for k in ("key", "run", "head", "use")})

    def add(self, part: LayerPart) -> None:
        part.tables["Inbound"]["reach"] = self.reach.add(part.nodes, *part.reach)
        self.nodes.append(part.tables)
        self.links.add(*part.links)
        self.redundancy.add(part.nodes, part.edges, part.substitutes)
        for head, text in part.use.items():
            self.use["key"].append(f"{self.run.key}/{head}")
            self.use["run"].append(self.run.key)
            self.use["head"].append(head)
            self.use["use"].append(text)

    def rows(self, n_prompts: int) -> dict[str, Rows]:
        run, tables = self.run.key, {}
        for name, columns in TABLES.items():
            rows = {c: [v for part in self.nodes for v in part[name].get(c, ())] for c in columns}
            rows["run"] = [run] * len(rows["key"])
            tables[name] = rows
        tables["InboundPage"]["rows"] = pack_all(tables["InboundPage"]["rows"])
        return (
            tables
            | self.links.rows(run, max(self.run.prompts, 1))
            | self.redundancy.rows(run, n_prompts)
            | {"FeatureIndex": self.use}
        )


def write_index(store: GraphStore, run: str | None = None) -> int:
    """Write (or rewrite) a finished run's route index from its edges: for a run
    ingested before the index existed. Returns the number of ``Inbound`` nodes.

    Raises:
        QueryError: no such run, or it has not finished (resuming its ingest writes it).
    """
    ref = resolve_run(store, run)
    if ref.status != "complete":
        raise QueryError(f"run {ref.key!r} is {ref.status}: resume its ingest, which indexes it")
    tables = index_rows(store, ref)
    store.write(tables, delete=index_deletes(ref.key))
    return len(tables["Inbound"]["key"])
