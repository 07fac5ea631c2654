"""The route index: a run's per-prompt edges, grouped by the node they enter.

A route search (:mod:`headgraph.queries.paths`) walks backwards from a head's
firings; at each step it needs the edges into one node, and the per-prompt
shares of the few edges whose routes might rank. Reading the target's whole
cone for that (:func:`~headgraph.queries.cone.load_cone`) costs time in
proportion to the run. The index stores, per node of the run's graph (a
component at a token role, ``7.1@END``):

- an ``Inbound`` node: the edges into it (upstream node keys and sides),
  strongest first, each with its shares summed over the run (``totals``, as
  float64: a bound on the score of any route through it): the
  :data:`FIRST_EDGES` strongest there, the rest in ``InboundEdges`` chunks,
  each twice the one before, read when a search gets that far; the
  prompts in which any edge enters the node, where its pages start, and
  ``reach``: the fewest hops to the node from each of the model's components
  (one character each, in the order of their sorted names; ``-``: ten or more,
  or none), so that a search ``--from`` a component prunes as exactly as the
  whole cone's;
- ``InboundPage`` nodes: the edges' per-prompt rows, packed, about
  :data:`PAGE_ROWS` rows a page, strongest edges in the first page.

A search reads the headers of the nodes it walks through and the pages of the
edges whose bound reaches the routes it returns, so its cost follows the
routes, not the size of the run. The ingest writes the index when it
finishes a run (:mod:`~headgraph.queries.index_build`, one layer of the run at a
time); :func:`~headgraph.queries.index_build.write_index` adds it to a run written
before it existed (such a run's searches read the whole cone).

A page's ``rows``: little-endian arrays, one after the other:
``offsets`` int32 ``[edges + 1]`` (each edge's rows), per row ``prompt`` int32
(an index into the run's prompt ids, sorted) and ``share`` float64, then
``sv_offsets`` int32 ``[rows + 1]`` and ``svs`` int16: the sparse set of the
firing each row enters, strongest first. Arrays and the upstream nodes' names
are kept as :mod:`~headgraph.queries.packing` writes them (compressed where that
makes them shorter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headgraph.queries.arrays import distinct
from headgraph.queries.cone import Cone, Node
from headgraph.queries.packing import pack_bytes, pack_text, unpack_bytes
from headgraph.queries.store import GraphStore, Rows

DTYPES = ("<i4", "<i4", "<f8", "<i4", "<i2")  # the fields of Packed, in order
PAGE_ROWS = 1000  # rows per page, about 35 kB: a page is one read of one value
HEADER = ("key", "run", "node", "component", "role", "ups", "sides", "totals", "prompts")
HEADER += ("pages", "reach")
TABLES = {  # the index's node types and their columns
    "Inbound": HEADER,
    "InboundPage": ("key", "run", "rows"),
    "InboundEdges": ("key", "run", "ups", "sides", "totals"),
}
FAR = 10  # a reach character '-': 10 hops or more, or none
FIRST_EDGES = 64  # edges in a header; the rest in chunks of 128, 256... (edge_chunks)


@dataclass(frozen=True)
class Packed:
    """A page of rows: edge ``e`` has rows ``offsets[e]:offsets[e + 1]``, and row ``r``
    the sparse set ``svs[sv_offsets[r]:sv_offsets[r + 1]]``."""

    offsets: np.ndarray  # [edges + 1]
    prompts: np.ndarray  # [rows]
    shares: np.ndarray  # [rows]
    sv_offsets: np.ndarray  # [rows + 1]
    svs: np.ndarray  # [the sparse sets' sizes, summed]

    def raw(self) -> bytes:
        """The arrays in field order and the :data:`DTYPES`, one after the other."""
        arrays = (self.offsets, self.prompts, self.shares, self.sv_offsets, self.svs)
        return b"".join(
            np.ascontiguousarray(a, dtype=t).tobytes() for a, t in zip(arrays, DTYPES, strict=True)
        )

    def pack(self) -> str:
        """:meth:`raw` as a page's ``rows`` text (:func:`pack_bytes`)."""
        return pack_bytes(self.raw())

    @classmethod
    def unpack(cls, text: str, n_edges: int) -> Packed:
        """What :meth:`pack` wrote for a page of ``n_edges`` edges."""
        raw, at = unpack_bytes(text), 0

        def take(dtype: str, n: int) -> np.ndarray:
            nonlocal at
            array = np.frombuffer(raw, dtype=dtype, count=n, offset=at)
            at += array.nbytes
            return array

        offsets = take(DTYPES[0], n_edges + 1)
        n_rows = int(offsets[-1])
        prompts, shares = take(DTYPES[1], n_rows), take(DTYPES[2], n_rows)
        sv_offsets = take(DTYPES[3], n_rows + 1)
        return cls(offsets, prompts, shares, sv_offsets, take(DTYPES[4], int(sv_offsets[-1])))


def encode(totals: np.ndarray) -> str:
    """Edges' totals as the ``totals`` text: little-endian float64 (a list of floats is
    several times slower to read), as :func:`pack_bytes` writes them."""
    return pack_bytes(np.ascontiguousarray(totals, dtype="<f8").tobytes())


def decode(text: str) -> list[float]:
    """The totals :func:`encode` wrote."""
    return np.frombuffer(unpack_bytes(text), dtype="<f8").tolist()


def prompt_ids(store: GraphStore, run: str) -> list[str]:
    """The run's prompt ids, sorted: the index names a prompt by its place here."""
    rows = store.query("MATCH (p:Prompt) WHERE p.run = $run RETURN p.id AS id", {"run": run})
    return sorted(r["id"] for r in rows)


def has_index(store: GraphStore, run: str) -> bool:
    """Whether the run has a route index (runs written before it have none)."""
    cypher = "MATCH (i:Inbound) WHERE i.run = $run RETURN i.key AS key LIMIT 1"
    return bool(store.query_if_present(cypher, {"run": run}))


def components(store: GraphStore, model: str) -> list[str]:
    """The model's component names, sorted: the order of a ``reach`` text's characters."""
    rows = store.query(
        "MATCH (c:Component) WHERE c.model = $model RETURN c.name AS name", {"model": model}
    )
    return sorted(r["name"] for r in rows)


class Reach:
    """Each node's fewest hops from every component (``reach``), built layer by layer:
    a node is as far from a component as the nearest of its upstream nodes, plus one
    (a node is 0 hops from its own component; a site, from no other)."""

    def __init__(self, names: list[str]) -> None:
        self.column = {name: i for i, name in enumerate(names)}
        self.known: dict[str, np.ndarray] = {}  # a firing node's name -> its hops [component]

    def add(
        self, nodes: list[Node], ups: np.ndarray, downs: np.ndarray, bounds: np.ndarray
    ) -> list[str]:
        """The ``reach`` texts of the ``nodes`` (a cone's) ``downs``, whose upstream nodes are
        ``ups[bounds[i]:bounds[i + 1]]``; remembered for the layers above."""
        n_components = len(self.column)
        base = np.full((len(nodes), n_components), FAR, dtype=np.uint8)  # [node, component]
        for i, node in enumerate(nodes):
            if not node.site and node.name in self.known:
                base[i] = self.known[node.name]
            if node.component in self.column:  # (the logits may have no Component node)
                base[i, self.column[node.component]] = 0
        hops = np.empty((len(downs), n_components), dtype=np.uint8)  # [down node, component]
        start = 0
        while start < len(downs):  # nodes a chunk, about 2**18 upstream rows at a time
            stop = int(np.searchsorted(bounds, bounds[start] + 2**18, side="right")) - 1
            stop = min(max(stop, start + 1), len(downs))
            a, b = bounds[start], bounds[stop]
            nearest = np.minimum.reduceat(base[ups[a:b]], bounds[start:stop] - a, axis=0)
            hops[start:stop] = np.minimum(nearest + 1, FAR)
            start = stop
        texts = []
        for i, node in enumerate(nodes[d] for d in downs.tolist()):
            if node.component in self.column:
                hops[i, self.column[node.component]] = 0
            self.known[node.name] = hops[i]
            texts.append(
                np.where(hops[i] < FAR, hops[i] + 48, 45).astype(np.uint8).tobytes().decode()
            )
        return texts


def header_key(run: str, node: str) -> str:
    """An ``Inbound`` key: ``run/7.1@END``."""
    return f"{run}/{node}"


def edges_key(run: str, node: str, chunk: int) -> str:
    """An ``InboundEdges`` key: ``run/7.1@END/e1``."""
    return f"{header_key(run, node)}/e{chunk}"


def edge_chunks(n_edges: int) -> list[tuple[int, int]]:
    """Where a node's edges go: ``(start, stop)`` of chunk 0 (the header's own, the
    :data:`FIRST_EDGES` strongest), then of chunks 1, 2... (``InboundEdges``), each
    twice the one before."""
    bounds, size = [0], FIRST_EDGES
    while bounds[-1] < n_edges:
        bounds.append(min(bounds[-1] + size, n_edges))
        size *= 2
    return list(zip(bounds[:-1], bounds[1:], strict=True)) or [(0, 0)]


def chunk_of(edge: int, first: int) -> tuple[int, int]:
    """The chunk holding a node's edge ``edge`` (its place among the node's edges) and
    where the chunk starts, for a header of ``first`` edges (see :func:`edge_chunks`)."""
    chunk = (edge // first + 1).bit_length() - 1
    return chunk, first * (2**chunk - 1)


def page_key(run: str, node: str, page: int) -> str:
    """An ``InboundPage`` key: ``run/7.1@END/0``."""
    return f"{header_key(run, node)}/{page}"


def node_rows(
    cone: Cone, prompts: np.ndarray, sparse_sets: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, Rows], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A header and its pages for each node that the cone's edges enter
    (``sparse_sets``: :func:`~headgraph.queries.sparse_sets.row_sparse_sets` of the cone;
    ``prompts``: the run's index of each of the cone's prompts): the :data:`TABLES` rows
    less ``run`` and the header's ``reach`` (a page's ``rows`` as :meth:`Packed.raw`
    bytes), and what :meth:`Reach.add` takes of them (upstream nodes by edge, the nodes
    entered, their edges' bounds)."""
    tables: dict[str, Rows] = {
        name: {k: [] for k in columns if k not in ("run", "reach")}
        for name, columns in TABLES.items()
    }
    if not len(cone.edge_up):
        empty = np.zeros(0, dtype=np.int64)
        return tables, (empty, empty, np.zeros(1, dtype=np.int64))
    run = cone.run.key
    keys = [n.key for n in cone.nodes]
    key_rank = np.argsort(np.argsort(np.array(keys, dtype=str)))
    totals = cone.totals
    # by the node entered, then strongest first (ties by upstream key and side)
    order = np.lexsort((cone.edge_side, key_rank[cone.edge_up], -totals, cone.edge_down))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    rows = cone.rows
    row_order = np.argsort(position[rows["edge"].to_numpy()], kind="stable")
    local = rows["prompt"].to_numpy()[row_order]
    prompt = prompts[local]
    share = rows["share"].to_numpy(dtype=float)[row_order]
    sv_counts, sv_flat = sparse_sets
    sv_starts = (np.cumsum(sv_counts) - sv_counts)[row_order]  # in the cone's row order
    sv_counts = sv_counts[row_order]
    sv_offsets = np.concatenate([[0], np.cumsum(sv_counts)])
    sv_flat = sv_flat[np.repeat(sv_starts - sv_offsets[:-1], sv_counts) + np.arange(len(sv_flat))]
    edge_offsets = np.concatenate([[0], np.cumsum(np.diff(cone.bounds)[order])])
    down = cone.edge_down[order]
    nodes = np.flatnonzero(np.r_[True, down[1:] != down[:-1], True])
    header, pages = tables["Inbound"], tables["InboundPage"]
    for a, b in zip(nodes[:-1].tolist(), nodes[1:].tolist(), strict=True):
        node = cone.nodes[int(down[a])]
        starts = edge_offsets[a:b] - edge_offsets[a]  # each edge's first row in the node
        cuts = np.flatnonzero(np.r_[True, np.diff(starts // PAGE_ROWS) > 0])
        bounds = [a + int(c) for c in cuts] + [b]
        for page, (e0, e1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            r0, r1 = int(edge_offsets[e0]), int(edge_offsets[e1])
            s0, s1 = int(sv_offsets[r0]), int(sv_offsets[r1])
            packed = Packed(
                edge_offsets[e0 : e1 + 1] - r0,
                prompt[r0:r1],
                share[r0:r1],
                sv_offsets[r0 : r1 + 1] - s0,
                sv_flat[s0:s1],
            )
            pages["key"].append(page_key(run, node.name, page))
            pages["rows"].append(packed.raw())  # packed at the end, on threads
        r0, r1 = int(edge_offsets[a]), int(edge_offsets[b])
        header["key"].append(header_key(run, node.name))
        header["node"].append(node.name)
        header["component"].append(node.component)
        header["role"].append(node.role)
        for chunk, (e0, e1) in enumerate(edge_chunks(b - a)):
            into = header if chunk == 0 else tables["InboundEdges"]
            if chunk:
                into["key"].append(edges_key(run, node.name, chunk))
            ups = "\n".join(keys[u] for u in cone.edge_up[order[a + e0 : a + e1]])
            into["ups"].append(pack_text(ups))
            into["sides"].append(cone.edge_side[order[a + e0 : a + e1]].tolist())
            into["totals"].append(encode(totals[order[a + e0 : a + e1]]))
        header["prompts"].append(distinct(prompt[r0:r1]).tolist())
        header["pages"].append([c - a for c in bounds])
    return tables, (cone.edge_up[order], down[nodes[:-1]], nodes)
