"""The run's circuit kept ready: its links, most relevant first, in pages.

A run's circuit (:func:`~headgraph.queries.circuit.circuit`, the explorer's first
picture) aggregates every per-prompt edge of the run into *links*
``(upstream node, head node, side)``, nodes named ``component@role`` (a site
and a firing of one component at one role are one node). Computed from the
edges, its cost grows with the run. So when a run finishes, the ingest writes
the links beside the route index (:mod:`headgraph.queries.index_build`, which reads
the run a layer at a time: each layer's :func:`layer_links` are added here):

- a ``CircuitIndex`` node per run: the node names (one per line, sorted) and
  which of them fire somewhere in the run;
- ``CircuitPage`` nodes: :data:`PAGE_LINKS` links a page, in the circuit's own
  order (most relevant, then most prompts, then highest mean share, then by
  name), each with its prompts, mean share and weight, relevance (summed over
  the prompts, divided by the run's prompts) and its five main singular vectors.

The circuit then reads pages from the first until ``top`` links pass its filters,
so the explorer's view costs about the same at any size of run.

A page's ``rows``: little-endian arrays, one after the other (as
:func:`~headgraph.queries.packing.pack_bytes` writes them), for
``n`` links: ``relevance``, ``mean_share``, ``mean_weight`` float64 ``[n]``, ``up``,
``down`` int32 ``[n]`` (indices into the names), ``side`` int32 ``[n]``
(an index into :data:`~headgraph.queries.cone.SIDES`), ``prompts`` int32 ``[n]``,
``svs`` int16 ``[n, 5]`` (``-1``: none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from headgraph.queries.arrays import within_runs
from headgraph.queries.cone import SIDES, Cone
from headgraph.queries.packing import pack_all, unpack_bytes
from headgraph.queries.store import GraphStore, Rows

PAGE_LINKS = 500  # links per page, about 35 kB of text: one read of one value
TOP_SVS = 5  # singular vectors kept per link
FIELDS = (  # a page's arrays, in order: (name, dtype, values per link)
    ("relevance", "<f8", 1),
    ("mean_share", "<f8", 1),
    ("mean_weight", "<f8", 1),
    ("up", "<i4", 1),
    ("down", "<i4", 1),
    ("side", "<i4", 1),
    ("prompts", "<i4", 1),
    ("svs", "<i2", TOP_SVS),
)
ORDER = ("relevance", "prompts", "mean_share", "up", "down", "side")  # the circuit's order
DESCENDING = (True, True, True, False, False, False)


@dataclass
class LinkTable:
    """Links gathered layer by layer (:meth:`add`), then written (:meth:`rows`)."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    fires: set[str] = field(default_factory=set)
    ids: dict[str, int] = field(default_factory=dict)  # node name -> its id in the frames

    def add(self, fires: set[str], found: tuple[pd.DataFrame, list[str]] | None) -> None:
        """One layer's :func:`layer_links`: the names of its firing nodes, and its links
        with their nodes' names (None: no edge into the layer)."""
        self.fires |= fires
        if found is None:
            return
        table, names = found
        ids = np.array([self.ids.setdefault(n, len(self.ids)) for n in names], dtype=np.int64)
        self.frames.append(table.assign(up=ids[table["up"]], down=ids[table["down"]]))

    def rows(self, run: str, n_prompts: int) -> dict[str, Rows]:
        """The ``CircuitIndex`` and ``CircuitPage`` rows of the run's links, ``relevance``
        divided by the run's ``n_prompts`` (then sorted, as the circuit sorts it)."""
        table = pd.concat(self.frames, ignore_index=True) if self.frames else links_frame()
        table["relevance"] /= n_prompts
        names = sorted(self.fires | set(self.ids))
        number = {name: i for i, name in enumerate(names)}  # sorted: ids order as names do
        renumber = np.array([number[n] for n in self.ids], dtype=np.int64)  # [id in frames]
        table["up"] = renumber[table["up"].to_numpy(dtype=np.int64)]
        table["down"] = renumber[table["down"].to_numpy(dtype=np.int64)]
        table = table.sort_values(list(ORDER), ascending=[not d for d in DESCENDING])
        pages = pack_pages(table)
        header = {
            "key": [run],
            "run": [run],
            "names": ["\n".join(names)],
            "fires": [[number[n] for n in sorted(self.fires)]],
            "links": [len(table)],
            "pages": [len(pages)],
        }
        page_rows = {
            "key": [page_key(run, i) for i in range(len(pages))],
            "run": [run] * len(pages),
            "page": list(range(len(pages))),
            "rows": pages,
        }
        return {"CircuitIndex": header, "CircuitPage": page_rows}


def layer_links(
    cone: Cone, sv_counts: np.ndarray, sv_flat: np.ndarray
) -> tuple[set[str], tuple[pd.DataFrame, list[str]] | None]:
    """What :meth:`LinkTable.add` takes of one layer's cone: the names of its firing nodes
    and its :func:`links` (None where no edge enters the layer); ``sv_counts``,
    ``sv_flat``: :func:`~headgraph.queries.sparse_sets.row_sparse_sets` of the cone (every
    edge into a node is in its layer's cone)."""
    fires = {n.name for n in cone.nodes if not n.site}
    return fires, links(cone, sv_counts, sv_flat) if len(cone.edge_up) else None


def page_key(run: str, page: int) -> str:
    """A ``CircuitPage`` key: ``run/0``."""
    return f"{run}/{page}"


def links_frame(**columns) -> pd.DataFrame:
    """A links table: ``up``, ``down`` (node ids), ``side`` (index), ``prompts``,
    ``mean_share``, ``mean_weight``, ``relevance`` (summed) and ``sv0``... (``-1``: none)."""
    names = ("up", "down", "side", "prompts", "mean_share", "mean_weight", "relevance")
    names += tuple(f"sv{i}" for i in range(TOP_SVS))
    return pd.DataFrame({n: columns.get(n, []) for n in names})


def links(cone: Cone, sv_counts: np.ndarray, sv_flat: np.ndarray) -> tuple[pd.DataFrame, list]:
    """The cone's edges aggregated into links, as :func:`links_frame`, and the names of
    the node ids in it.

    A link's singular vectors: each of its edges ranks the singular vectors of the
    firings it enters (:func:`~headgraph.queries.sparse_sets.rank_singular_vectors`), and
    ``k`` scores ``1 / (its place + 1)`` in each; the highest scores first, ties by ``k``.
    """
    names = [n.name for n in cone.nodes]
    name_ids, unique_names = pd.factorize(np.array(names, dtype=object))
    n_names = len(unique_names)
    link_code = (name_ids[cone.edge_up] * n_names + name_ids[cone.edge_down]) * len(SIDES)
    link_of_edge, link_codes = pd.factorize(link_code + cone.edge_side, sort=True)
    link_codes = np.asarray(link_codes, dtype=np.int64)
    site = np.array([n.site for n in cone.nodes], dtype=bool)[cone.edge_up]  # [edge]
    # each link's rows by prompt, then the site's before the firing's: the order in which
    # the circuit computed from the edges sums them too, so the two agree to the last bit
    rows = cone.rows.assign(site=site[cone.rows["edge"].to_numpy()])
    rows = rows.sort_values(["prompt", "site"], kind="stable")
    link = link_of_edge[rows["edge"].to_numpy()]
    grouped = rows.groupby(link, sort=True).agg(
        mean_share=("share", "mean"), mean_weight=("weight", "mean"), relevance=("relevance", "sum")
    )
    # a link's prompts: its rows, less the prompts both of its edges (site, firing) hold
    n_links, n_prompts = len(link_codes), max(len(cone.prompt_ids), 1)
    shared = np.bincount(link_of_edge, minlength=n_links)[link] > 1  # [row]
    pair, count = np.unique(
        link[shared].astype(np.int64) * n_prompts + rows["prompt"].to_numpy()[shared],
        return_counts=True,
    )
    prompts = np.bincount(link, minlength=n_links) - np.bincount(
        pair[count > 1] // n_prompts, minlength=n_links
    )
    up, down_and_side = np.divmod(link_codes, n_names * len(SIDES))
    svs = _link_svs(cone, link_of_edge, n_links, sv_counts, sv_flat)
    table = links_frame(
        up=up,
        down=down_and_side // len(SIDES),
        side=down_and_side % len(SIDES),
        prompts=prompts,
        mean_share=grouped["mean_share"].to_numpy(),
        mean_weight=grouped["mean_weight"].to_numpy(),
        relevance=grouped["relevance"].to_numpy(),
        **{f"sv{i}": svs[:, i] for i in range(TOP_SVS)},
    )
    return table, list(unique_names)


def _link_svs(cone, link_of_edge, n_links: int, sv_counts, sv_flat) -> np.ndarray:
    """``[link, TOP_SVS]`` each link's main singular vectors (see :func:`links`)."""
    out = np.full((n_links, TOP_SVS), -1, dtype=np.int64)
    if not len(sv_flat):
        return out
    place = within_runs(sv_counts)  # [element] its place in its sparse set
    edge = np.repeat(cone.rows["edge"].to_numpy(), sv_counts)  # [element]
    width = int(sv_flat.max()) + 1
    # each edge's ranking: most often in S, then by mean place, then by index (counted
    # densely over (edge, k): a linear pass, where a sort of the elements was the cost)
    element = edge * width + sv_flat
    times = np.bincount(element, minlength=len(cone.edge_up) * width)
    pair = np.flatnonzero(times)  # by edge, then k
    slot = np.empty(len(times), dtype=np.int64)  # [(edge, k)] its pair (where present)
    slot[pair] = np.arange(len(pair))
    times = times[pair]
    # places summed per pair, not over every (edge, k): the same sums, in the same order
    mean_place = np.bincount(slot[element], weights=place, minlength=len(pair)) / times
    pair_edge, pair_k = np.divmod(pair, width)
    # one key for (-times, mean place): a mean place is under width, and exact ties stay
    # ties; the stable sort keeps k's order among them
    order = np.lexsort((mean_place - times * float(width), pair_edge))
    pair_edge, pair_k = pair_edge[order], pair_k[order]
    score = 1.0 / (1 + _place_in_group(pair_edge))
    # a link's score per k: summed over its edges (a site and a firing of one node)
    codes = link_of_edge[pair_edge] * width + pair_k
    code = np.flatnonzero(np.bincount(codes, minlength=n_links * width))  # sorted, present
    total = np.bincount(codes, weights=score, minlength=n_links * width)[code]
    link, k = np.divmod(code, width)
    order = np.lexsort((-total, link))  # stable: k's order among equal scores
    link, k = link[order], k[order]
    place = _place_in_group(link)
    top = place < TOP_SVS
    out[link[top], place[top]] = k[top]
    return out


def _place_in_group(sorted_ids: np.ndarray) -> np.ndarray:
    """Each element's place among the equal ids around it (``sorted_ids`` grouped)."""
    starts = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(sorted_ids)), 0))
    return np.arange(len(sorted_ids)) - first


def pack_pages(table: pd.DataFrame) -> list[str]:
    """The links (``up``, ``down`` as name ids), :data:`PAGE_LINKS` a page, each page as
    its ``rows`` text: each field's array, then the next's (columns read once, then sliced)."""
    arrays = [
        np.ascontiguousarray(
            table[[f"sv{i}" for i in range(TOP_SVS)]].to_numpy() if name == "svs" else table[name],
            dtype=dtype,
        )
        for name, dtype, _ in FIELDS
    ]
    return pack_all(
        [
            b"".join(a[start : start + PAGE_LINKS].tobytes() for a in arrays)
            for start in range(0, len(table), PAGE_LINKS)
        ]
    )


def unpack(text: str) -> dict[str, np.ndarray]:
    """A page that :func:`pack_pages` wrote: field name -> ``[n]`` (``svs``: ``[n, 5]``)."""
    raw = unpack_bytes(text)
    per_link = sum(np.dtype(t).itemsize * width for _, t, width in FIELDS)
    n, at, out = len(raw) // per_link, 0, {}
    for name, dtype, width in FIELDS:
        array = np.frombuffer(raw, dtype=dtype, count=n * width, offset=at)
        at += array.nbytes
        out[name] = array.reshape(n, width) if width > 1 else array
    return out


@dataclass(frozen=True)
class IndexedLinks:
    """The links :func:`read_links` kept, in the circuit's order, the nodes' names, and
    those of them that fire in the run."""

    names: list[str]
    fires: set[str]
    links: dict[str, np.ndarray]
    n_prompts: int


def read_links(
    store: GraphStore,
    run: str,
    *,
    n_prompts: int,
    min_prompts: int,
    min_share: float,
    min_relevance: float,
    top: int | None,
) -> IndexedLinks | None:
    """The run's links that pass the filters, at most ``top``, read a page at a time from
    the first; None for a run without the index (``n_prompts``: the run's, at least 1)."""
    header = store.query_if_present(
        "MATCH (c:CircuitIndex) WHERE c.key = $run RETURN c.names AS names, "
        "c.fires AS fires, c.pages AS pages",
        {"run": run},
    )
    if not header:
        return None
    names = header[0]["names"].split("\n") if header[0]["names"] else []
    kept: list[dict[str, np.ndarray]] = []
    found = 0
    for page in range(int(header[0]["pages"])):
        rows = store.query(
            "MATCH (c:CircuitPage) WHERE c.key = $key RETURN c.rows AS rows",
            {"key": page_key(run, page)},
        )
        part = unpack(rows[0]["rows"])
        keep = (
            (part["prompts"] >= min_prompts)
            & (part["mean_share"] >= min_share)
            & (part["relevance"] >= min_relevance)
        )
        kept.append({name: values[keep] for name, values in part.items()})
        found += int(keep.sum())
        if (top is not None and found >= top) or part["relevance"][-1] < min_relevance:
            break  # enough, or the rest is less relevant still
    links = {
        name: np.concatenate([k[name] for k in kept])[:top] if kept else np.zeros(0)
        for name, _, _ in FIELDS
    }
    fires = {names[i] for i in header[0]["fires"]}
    return IndexedLinks(names, fires, links, n_prompts)
