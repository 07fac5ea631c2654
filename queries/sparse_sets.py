"""Which singular vectors carried a cone's edges: each row's sparse set, and their ranking.

An edge of a cone enters some firings of its head (one per prompt, its strongest
copy: :class:`~headgraph.queries.cone.Cone`'s rows), and each firing's score is
carried by its sparse set S, the few singular vectors listed strongest first. The
route index, the kept circuit and the substitutes read the sets of many rows at
once (:func:`row_sparse_sets`); a path or a link names the vectors its firings
use most (:func:`rank_singular_vectors`).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from headgraph.queries.arrays import ranges

if TYPE_CHECKING:
    from headgraph.queries.cone import Cone


def row_sparse_sets(cone: Cone, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sparse set of the firing each of the cone's rows (or ``rows`` of them) enters,
    flat: ``(counts [row], singular vectors [sum of counts])``, strongest first within a
    row (none into the logits). Rows and firings meet as integer codes
    (prompt, head, destination, source), not by a lookup per row."""
    table = cone.rows
    picked = slice(None) if rows is None else rows
    edge = table["edge"].to_numpy()[picked]
    prompt, dest, source = (table[c].to_numpy().astype(np.int64)[picked]
                            for c in ("prompt", "dest", "source"))  # fmt: skip
    component = {c: i for i, c in enumerate(dict.fromkeys(n.component for n in cone.nodes))}
    node_component = np.array([component[n.component] for n in cone.nodes], dtype=np.int64)
    prompt_of = {p: i for i, p in enumerate(cone.prompt_ids)}
    keys = np.array(  # the firings' (prompt, head, dest, source); -1: not in the cone
        [(prompt_of.get(p, -1), component.get(h, -1), d, s) for p, h, d, s in cone.sparse_sets],
        dtype=np.int64,
    ).reshape(-1, 4)
    sets = list(cone.sparse_sets.values())
    sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    values = np.fromiter(chain.from_iterable(sets), dtype=np.int64, count=int(sizes.sum()))
    width = int(max(keys[:, 2:].max(initial=0), dest.max(initial=0), source.max(initial=0))) + 1
    heads = max(len(component), 1)

    def code(p, h, d, s):
        return ((p * heads + h) * width + d) * width + s

    wanted = code(prompt, node_component[cone.edge_down[edge]], dest, source)  # [row]
    firing = np.flatnonzero((keys[:, 0] >= 0) & (keys[:, 1] >= 0))
    if not len(firing):
        return np.zeros(len(wanted), np.int64), np.zeros(0, np.int64)
    firing_codes = code(*keys[firing].T)
    order = np.argsort(firing_codes, kind="stable")
    firing, firing_codes = firing[order], firing_codes[order]
    at = np.minimum(np.searchsorted(firing_codes, wanted), len(firing) - 1)
    found = firing[at]  # [row] the firing it enters, where firing_codes[at] == wanted
    counts = np.where(firing_codes[at] == wanted, sizes[found], 0)
    starts = (np.cumsum(sizes) - sizes)[found]
    return counts, values[ranges(starts, counts)]


def rank_singular_vectors(sparse_sets) -> tuple[int, ...]:
    """The singular vectors of some firings' sparse sets: most often in S first, then by
    their mean rank in S (S lists the strongest first), then by index."""
    counts: dict[int, list[int]] = {}  # k -> [times in S, sum of its positions]
    for sparse_set in sparse_sets:
        for rank, k in enumerate(sparse_set):
            count = counts.setdefault(int(k), [0, 0])
            count[0] += 1
            count[1] += rank
    return tuple(sorted(counts, key=lambda k: (-counts[k][0], counts[k][1] / counts[k][0], k)))
