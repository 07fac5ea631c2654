"""A target's cone read from the route index (:mod:`headgraph.queries.inbound`), a node
and a page at a time, as a route search reaches them.

:class:`IndexedCone` answers what :func:`~headgraph.queries.paths.paths` asks of a
:class:`~headgraph.queries.cone.Cone` (nodes, targets, the edges into a node, an
edge's total and per-prompt shares, its singular vectors), with the same numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from headgraph.queries.cone import LOGITS, Node
from headgraph.queries.inbound import (
    FAR,
    Packed,
    chunk_of,
    components,
    decode,
    edges_key,
    header_key,
    page_key,
    prompt_ids,
)
from headgraph.queries.packing import unpack_text
from headgraph.queries.selection import RunRef, check_prompt
from headgraph.queries.sparse_sets import rank_singular_vectors
from headgraph.queries.store import GraphStore

HEADERS = (
    "MATCH (i:Inbound) WHERE i.run = $run AND {where} RETURN i.node AS node, i.ups AS ups, "
    "i.sides AS sides, i.totals AS totals, i.prompts AS prompts, i.pages AS pages"
)
PAGE = "MATCH (p:InboundPage) WHERE p.key = $key RETURN p.rows AS rows"  # a key lookup
EDGES = (
    "MATCH (e:InboundEdges) WHERE e.key = $key "
    "RETURN e.ups AS ups, e.sides AS sides, e.totals AS totals"
)


@dataclass
class _Header:
    """A node's edges (their first ids here) and pages, and the prompts it is entered in."""

    name: str
    first_edge: int
    pages: list[int]  # edge offsets in the node of each page, and the end
    prompts: set[int]
    loaded: dict[int, Packed]
    first: int  # edges in the header itself (the first chunk)


class _Column:
    """A value per edge id, filled a chunk of a node's edges at a time when first asked
    for (``load(edge)``): a header lists the strongest edges into its node, of which a
    search meets a few. ``intern`` turns a stored node key into a node id on first use."""

    def __init__(self, load: Callable[[int], None], intern: Callable[[str], int] | None = None):
        self.values: list = []
        self._load, self._intern = load, intern

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, edge: int):
        value = self.values[edge]
        if value is None:
            self._load(edge)
            value = self.values[edge]
        if self._intern is not None and isinstance(value, str):
            value = self.values[edge] = self._intern(value)
        return value

    def fill(self, at: int, values: list) -> None:
        self.values[at : at + len(values)] = values


class IndexedCone:
    """The cone of head ``target`` from the run's route index.

    Node and edge ids are given as the search meets them. ``role`` keeps the target's
    firings at that destination role; ``prompt`` keeps one prompt's rows.
    """

    def __init__(
        self,
        store: GraphStore,
        run: RunRef,
        target: str,
        *,
        role: str | None = None,
        prompt: str | None = None,
    ) -> None:
        self.store, self.run, self.target = store, run, target
        self.n_prompts = 1 if prompt is not None else max(run.prompts, 1)
        self.only: int | None = None
        if prompt is not None:
            ids = prompt_ids(store, run.key)
            if prompt not in ids:
                check_prompt(store, run.key, prompt)
            self.only = ids.index(prompt)
        self.nodes: list[Node] = []
        self.edge_up = _Column(self._load_chunk, self._node)
        self.edge_down: list[int] = []
        self.edge_side = _Column(self._load_chunk)
        self._totals = _Column(self._load_chunk)
        self._ids: dict[str, int] = {}
        self._headers: dict[int, _Header | None] = {}
        where, params = "i.component = $target", {"target": target}
        if role is not None:
            where, params["role"] = where + " AND i.role = $role", role
        self.targets = frozenset(self._read(where, params))

    def _node(self, key: str) -> int:
        if key not in self._ids:
            self._ids[key] = len(self.nodes)
            self.nodes.append(Node.parse(key))
        return self._ids[key]

    def _read(self, where: str, params: dict) -> list[int]:
        """Read nodes' headers; the nodes' ids."""
        found = []
        rows = self.store.query(HEADERS.format(where=where), {"run": self.run.key, **params})
        for row in rows:
            node = self._node(row["node"])
            found.append(node)
            prompts = set(row["prompts"])
            if self.only is not None:
                prompts &= {self.only}
            header = _Header(row["node"], len(self.edge_down), row["pages"], prompts, {}, 0)
            n_edges = row["pages"][-1]
            self._headers[node] = header
            for column in (self.edge_up, self.edge_side, self._totals):
                column.values.extend([None] * n_edges)  # filled chunk by chunk
            self.edge_down.extend([node] * n_edges)
            header.first = self._fill(header, 0, row)
        return found

    def _fill(self, header: _Header, at: int, row: dict) -> int:
        """Put a chunk of a node's edges (from its header, or ``InboundEdges``) at its
        place ``at`` among them; its length."""
        ups = unpack_text(row["ups"]).split("\n") if row["ups"] else []
        start = header.first_edge + at
        self.edge_up.fill(start, ups)
        self.edge_side.fill(start, row["sides"])
        self._totals.fill(start, decode(row["totals"]))
        return len(ups)

    def _load_chunk(self, edge: int) -> None:
        """Read the chunk of its node's edges that holds ``edge``."""
        header = self._headers[self.edge_down[edge]]
        assert header is not None  # an edge enters a node with a header
        chunk, start = chunk_of(edge - header.first_edge, header.first)
        key = edges_key(self.run.key, header.name, chunk)
        (row,) = self.store.query(EDGES, {"key": key})
        self._fill(header, start, row)

    def _header(self, node: int) -> _Header | None:
        if node not in self._headers:
            self._headers[node] = None  # a site, or a firing no edge enters
            if not self.nodes[node].site:
                self._read("i.key = $key", {"key": header_key(self.run.key, self.nodes[node].name)})
        return self._headers[node]

    def edges_into(self, node: int) -> list[int]:
        """Ids of the edges into a node (a site has none)."""
        header = self._header(node)
        if header is None:
            return []
        return list(range(header.first_edge, header.first_edge + header.pages[-1]))

    def total(self, edge: int) -> float:
        """The edge's shares summed over the run's prompts (a bound on its routes' scores)."""
        return self._totals[edge]

    def node_prompts(self, node: int) -> set[int]:
        """The prompts (indices) in which some edge enters the node."""
        header = self._header(node)
        return header.prompts if header else set()

    def _rows(self, edge: int) -> tuple[Packed, int, int]:
        """The page holding the edge's rows, and their bounds there (read on first use)."""
        header = self._headers[self.edge_down[edge]]
        assert header is not None  # an edge enters a node with a header
        k = edge - header.first_edge
        page = bisect.bisect_right(header.pages, k) - 1
        if page not in header.loaded:
            key = page_key(self.run.key, header.name, page)
            (row,) = self.store.query(PAGE, {"key": key})
            n_edges = header.pages[page + 1] - header.pages[page]
            header.loaded[page] = Packed.unpack(row["rows"], n_edges)
        packed, at = header.loaded[page], k - header.pages[page]
        a, b = int(packed.offsets[at]), int(packed.offsets[at + 1])
        if self.only is not None:
            a += int(np.searchsorted(packed.prompts[a:b], self.only))
            b = a + int(a < b and packed.prompts[a] == self.only)
        return packed, a, b

    def shares(self, edge: int) -> dict[int, float]:
        """Prompt index -> the edge's share in that prompt (where it occurs)."""
        packed, a, b = self._rows(edge)
        return dict(zip(packed.prompts[a:b].tolist(), packed.shares[a:b].tolist(), strict=True))

    def singular_vectors(self, edge: int, prompts) -> tuple[int, ...]:
        """As :meth:`Cone.singular_vectors` (:func:`rank_singular_vectors`)."""
        if self.nodes[self.edge_down[edge]].component == LOGITS:
            return ()
        packed, a, b = self._rows(edge)
        wanted, at = set(prompts), packed.sv_offsets
        return rank_singular_vectors(
            packed.svs[at[r] : at[r + 1]].tolist()
            for r in range(a, b)
            if int(packed.prompts[r]) in wanted
        )

    def reach(self, source: str):
        """The fewest hops from any node of ``source`` to each node, as a function of the
        node id: from the nodes' ``reach`` texts (a site, or a firing no edge enters, is
        0 hops from its own component and out of reach of the others)."""
        names = components(self.store, self.run.model)
        column = names.index(source) if source in names else None
        rows = self.store.query(
            "MATCH (i:Inbound) WHERE i.run = $run RETURN i.node AS node, i.reach AS reach",
            {"run": self.run.key},
        )
        far = float("inf")
        by_name = {}
        for row in rows if column is not None else ():
            char = row["reach"][column]
            by_name[row["node"]] = int(char) if char != "-" else FAR
        hops: dict[int, float] = {}  # by node id, as the search meets them

        def reach(node: int) -> float:
            if node not in hops:
                n = self.nodes[node]
                own = n.component == source
                hops[node] = 0 if own else far if n.site else by_name.get(n.name, far)
            return hops[node]

        return reach
