"""A traced batch's SIGNAL rows and sites, column by column: array work, no loop over edges.

An edge from component ``c`` at token ``t`` into a firing becomes

- one row from each *traced* firing of ``c`` that ends at ``t`` (``c`` a head that fires
  there), its relevance split evenly over those copies; or
- one row from the site ``(prompt, c, t)``, written once however many edges leave it.

Rows keep the order of the batch's edges, copies in the order of the upstream firings,
and sites the order in which an edge first leaves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from headgraph.ingest.core.batch_trace import SIDES, BatchTrace
from headgraph.ingest.core.components import Component
from headgraph.queries.arrays import ranges

Rows = dict[str, list]  # column name -> values


@dataclass(frozen=True)
class SignalRows:
    """A batch's SIGNAL rows, and what its partial aggregates need of each.

    Attributes:
        from_firing: Rows of ``SIGNAL:Firing`` (from the upstream head's firings).
        from_site: Rows of ``SIGNAL:Site`` (from the component at the token).
        sites: Site key -> ``(prompt, component, kind, layer, head, token, role)``, in order.
        firing: ``[row]`` the downstream firing of each row, ``from_firing``'s rows first.
        upstream, side, role: ``[row]`` object arrays: the upstream component's name, the
            side's name and the role of the token where the upstream end writes.
        weight, relevance: ``[row]`` float64, the rows' ``weight`` and ``relevance``.
    """

    from_firing: Rows
    from_site: Rows
    sites: dict[str, tuple]
    firing: np.ndarray
    upstream: np.ndarray
    side: np.ndarray
    role: np.ndarray
    weight: np.ndarray
    relevance: np.ndarray


def longs(t: Tensor) -> np.ndarray:
    """A tensor's values as int64 on the CPU."""
    return t.detach().cpu().long().numpy()


def doubles(t: Tensor) -> np.ndarray:
    """A tensor's values as float64 on the CPU (exact from any narrower float)."""
    return t.detach().cpu().double().numpy()


def role_table(trace: BatchTrace, width: int) -> np.ndarray:
    """``[prompt, pos]`` object: each token's role (None where it has none)."""
    roles = np.full((len(trace.prompts), width), None, dtype=object)
    for b, prompt in enumerate(trace.prompts):
        for pos in range(width):
            roles[b, pos] = prompt.role_at(pos)
    return roles


def signal_rows(trace: BatchTrace, *, run: str, batch: int, firing_key: np.ndarray) -> SignalRows:
    """The SIGNAL rows of one traced batch (``firing_key``: ``[firing]`` object, the keys)."""
    f = trace.firings
    fb, fl, fh, fd = (longs(t) for t in (f.batch, f.layer, f.head, f.dest))  # [firing]
    traced = trace.traced.cpu().numpy()
    i, side, token = (longs(t) for t in (trace.edge_firing, trace.edge_side, trace.edge_token))
    n_layers, n_heads = trace.layout.n_layers, trace.layout.n_heads
    # the upstream axis, extended by every head's own QK bias (edge_component == len(axis))
    axis = [*trace.layout.components]
    axis += [Component("qk_bias", l, h) for l in range(n_layers) for h in range(n_heads)]
    n_axis = len(trace.layout)
    up = longs(trace.edge_component)
    up = np.where(up < n_axis, up, n_axis + fl[i] * n_heads + fh[i])  # [edge]
    names = np.array([c.name for c in axis], dtype=object)
    kinds = np.array([c.kind for c in axis], dtype=object)
    up_layer = np.array([c.layer for c in axis], dtype=np.int64)
    up_head = np.array([c.head for c in axis], dtype=np.int64)
    width = int(max(len(p.tokens) for p in trace.prompts))
    width = max(width, int(token.max(initial=-1)) + 1, int(fd.max(initial=-1)) + 1)
    b = fb[i]  # [edge]

    # the traced firings of each (prompt, layer, head, dest), in firing order
    def code(prompt, layer, head, pos):
        return ((prompt * n_layers + layer) * n_heads + head) * width + pos

    rows = np.flatnonzero(traced)
    fired = rows[np.argsort(code(fb[rows], fl[rows], fh[rows], fd[rows]), kind="stable")]
    fired_code = code(fb[fired], fl[fired], fh[fired], fd[fired])
    is_head = kinds[up] == "head"
    edge_code = np.where(is_head, code(b, up_layer[up], up_head[up], token), -1)
    lo = np.searchsorted(fired_code, edge_code, side="left")
    copies = np.searchsorted(fired_code, edge_code, side="right") - lo  # [edge], 0 for a site

    # from firings: each edge repeated once per copy
    many = np.flatnonzero(copies)
    e_f = np.repeat(many, copies[many])  # [row]
    source = fired[ranges(lo[many], copies[many])]
    # from sites: one per (prompt, upstream, token), in order of first use
    e_s = np.flatnonzero(copies == 0)
    site_code = (b[e_s] * len(axis) + up[e_s]) * width + token[e_s]
    _, first, which = np.unique(site_code, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    site_edges = e_s[first[order]]  # an edge leaving each site, sites in order
    roles = role_table(trace, width)
    ids = [p.id for p in trace.prompts]
    sites: dict[str, tuple] = {}
    for e in site_edges.tolist():
        c = axis[up[e]]
        t, p = int(token[e]), int(b[e])
        sites[f"{run}|{ids[p]}|{c.name}|{t}"] = (ids[p], c.name, c.kind, c.layer, c.head, t,
                                                 roles[p, t])  # fmt: skip
    site_key = np.array(list(sites), dtype=object)

    weight, share, relevance = (doubles(t) for t in (trace.edge_weight, trace.edge_share,
                                                     trace.edge_relevance))  # fmt: skip
    side_names = np.array(SIDES, dtype=object)

    def table(e: np.ndarray, sources: np.ndarray, row_relevance: np.ndarray) -> Rows:
        return {
            "from": sources.tolist(),
            "to": firing_key[i[e]].tolist(),
            "upstream": names[up[e]].tolist(),
            "side": side_names[side[e]].tolist(),
            "token": token[e].tolist(),
            "weight": weight[e].tolist(),
            "share": share[e].tolist(),
            "batch": [batch] * len(e),
            "relevance": row_relevance.tolist(),
        }

    split_relevance = relevance[e_f] / copies[e_f]  # [row] over an edge's copies
    every = np.concatenate([e_f, e_s])
    return SignalRows(
        from_firing=table(e_f, firing_key[source], split_relevance),
        from_site=table(e_s, site_key[rank[which]], relevance[e_s]),
        sites=sites,
        firing=i[every],
        upstream=names[up[every]],
        side=side_names[side[every]],
        role=roles[b[every], token[every]],
        weight=weight[every],
        relevance=np.concatenate([split_relevance, relevance[e_s]]),
    )
