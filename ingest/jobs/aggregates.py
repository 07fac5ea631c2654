# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false, reportIndexIssue=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""A run's aggregates (``CARRIES``), kept up to date batch by batch.

Each batch's rows carry its partial aggregates (``Partial`` nodes, one per
upstream, head, side and role: prompts, weight sum and count, singular-vector
counts, relevance sum), written in the batch's own transaction. The run's
``CARRIES`` are the partials summed, in batch order, whichever order (or shard)
the batches came in: reading them back is a scan of one small table, not of
every edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from headgraph.ingest.core.records import Prompt
from headgraph.ingest.jobs.signal_rows import SignalRows
from headgraph.queries.arrays import ranges, tally
from headgraph.queries.store import GraphStore, Rows

KEY = ["upstream", "head", "side", "role"]
PARTIAL_COLUMNS = (*KEY, "batch", "prompts", "weight_sum", "weights", "svs", "sv_counts",
                   "relevance_sum")  # fmt: skip


def partial_rows(
    run: str, batch: int, *, heads: np.ndarray, prompts: np.ndarray, svs: FlatLists,
    signals: SignalRows,
) -> Rows:  # fmt: skip
    """A batch's partial aggregates, from its SIGNAL rows (:func:`.signal_rows.signal_rows`).

    ``heads``, ``prompts``: ``[firing]`` object arrays, each firing's head (``9.9``) and
    prompt id; ``svs``: each firing's sparse set. An edge's role is that of its upstream end
    (a firing's destination, a site's token), its head and singular vectors those of the
    firing it enters.
    """
    to = signals.firing  # [row]
    if not len(to):
        return {}
    role = signals.role.copy()
    role[role == None] = ""  # noqa: E711 - elementwise
    edges = pd.DataFrame(
        {
            "upstream": signals.upstream,
            "head": heads[to],
            "side": signals.side,
            "role": role,
            "prompt": prompts[to],
            "weight": signals.weight,
            "relevance": signals.relevance,
        }
    )
    partials = _partials(edges, svs.take(to))
    keys = zip(*(partials[k].tolist() for k in KEY), strict=True)
    return {
        "key": [f"{run}|{batch}|{u}->{h}:{s}@{r}" for u, h, s, r in keys],
        "run": [run] * len(partials),
        "batch": [batch] * len(partials),
        **{column: partials[column].tolist() for column in PARTIAL_COLUMNS if column != "batch"},
    }


@dataclass(frozen=True)
class FlatLists:
    """Lists of integers end to end: list ``j`` is ``values[starts[j]:starts[j] + lengths[j]]``."""

    lengths: np.ndarray  # [list]
    values: np.ndarray  # [sum of lengths]

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths

    @classmethod
    def of(cls, lists: Sequence[Sequence[int]]) -> FlatLists:
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        values = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64,
                             count=int(lengths.sum()))  # fmt: skip
        return cls(lengths, values)

    def take(self, rows: np.ndarray) -> FlatLists:
        """The lists at ``rows`` (repeats allowed), end to end."""
        lengths = self.lengths[rows]
        return FlatLists(lengths, self.values[ranges(self.starts[rows], lengths)])


def _partials(edges: pd.DataFrame, svs: FlatLists) -> pd.DataFrame:
    """Per-prompt edges (``upstream``, ``head``, ``side``, ``role``, ``prompt``, ``weight``,
    ``relevance``) and the ``svs`` of the firing each enters, summed per (upstream, head,
    side, role), in row order: one partial each (columns :data:`PARTIAL_COLUMNS` but
    ``batch``), sorted by key."""
    groups = edges.groupby(KEY, sort=True)
    sums = groups.agg(
        prompts=("prompt", "nunique"),
        weight_sum=("weight", "sum"),
        weights=("weight", "size"),
        relevance_sum=("relevance", "sum"),
    )
    group = np.repeat(groups.ngroup().to_numpy(), svs.lengths)
    svs_, sv_counts = _singular_vectors(group, svs.values, None, len(sums))
    return sums.reset_index().assign(svs=svs_, sv_counts=sv_counts)


def stored_partials(store: GraphStore, run: str) -> pd.DataFrame:
    """The run's partial aggregates, one row each (columns :data:`PARTIAL_COLUMNS`)."""
    columns = ", ".join(f"p.{c} AS {c}" for c in PARTIAL_COLUMNS)
    return store.frame(
        f"MATCH (p:Partial) WHERE p.run = $run RETURN {columns}",
        {"run": run},
        columns=PARTIAL_COLUMNS,
    )


def carries_rows(partials: pd.DataFrame, *, model: str, run: str, n_prompts: int) -> Rows:
    """Per-run aggregates: one CARRIES row per (upstream, head, side, role), the partials of
    every batch summed in batch order (so the same whatever order they were written in).
    Singular vectors by count, then index."""
    if partials.empty:
        return {}
    frame = partials.assign(role=partials["role"].fillna("")).sort_values(["batch", *KEY])
    groups = frame.groupby(KEY, sort=True)
    sums = groups[["prompts", "weight_sum", "weights", "relevance_sum"]].sum()
    keys = list(sums.index)
    svs = FlatLists.of(frame["svs"].tolist())
    svs, sv_counts = _singular_vectors(
        np.repeat(groups.ngroup().to_numpy(), svs.lengths),
        svs.values,
        FlatLists.of(frame["sv_counts"].tolist()).values,
        len(keys),
    )
    prompts = sums["prompts"].to_numpy(dtype=np.int64).tolist()
    weight_sum, weights = sums["weight_sum"].to_numpy(float), sums["weights"].to_numpy(float)
    relevance = sums["relevance_sum"].to_numpy(float) / n_prompts
    return {
        "from": [f"{model}|{k[0]}" for k in keys],
        "to": [f"{model}|{k[1]}" for k in keys],
        "run": [run] * len(keys),
        "side": [k[2] for k in keys],
        "role": [k[3] for k in keys],
        "prompts": prompts,
        "share_of_prompts": [n / n_prompts for n in prompts],
        "mean_weight": (weight_sum / weights).tolist(),
        "svs": svs,
        "sv_counts": sv_counts,
        "relevance": relevance.tolist(),
    }


def _singular_vectors(group: np.ndarray, sv: np.ndarray, n: np.ndarray | None, n_groups: int):
    """Each group's singular vectors and their summed counts, most often first, then by
    index: ``(svs, counts)``, a list per group. ``group``, ``sv``, ``n``: one entry per
    (row, singular vector) pair, its group, the vector and its count (None: 1 each)."""
    width = int(sv.max()) + 1 if len(sv) else 1
    codes, counts, summed = tally(group * width + sv, n)
    totals = counts if summed is None else summed.astype(np.int64)
    g, k = codes // width, codes % width
    most = int(totals.max()) + 1 if len(totals) else 1
    if n_groups * most * width < 2**62:  # by group, most often first, then index: one key
        order = np.argsort((g * most + (most - 1 - totals)) * width + k)
    else:
        order = np.lexsort((k, -totals, g))
    bounds = np.searchsorted(g[order], np.arange(n_groups + 1)).tolist()
    k, totals = k[order].tolist(), totals[order].tolist()
    pairs = [(k[a:b], totals[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def edge_partials(signals: Iterable[dict]) -> pd.DataFrame:
    """Per-prompt edges (``upstream``, ``head``, ``side``, ``role``, ``prompt``, ``weight``,
    ``svs``, ``relevance``) as partials of one batch: the seeds' edges into the logits, and
    the edges of a run whose batches were written before partials existed. Summed in a
    fixed order, whatever order the store returned them in."""
    edges = pd.DataFrame(list(signals), columns=[*KEY, "prompt", "weight", "svs", "relevance"])
    if edges.empty:
        return pd.DataFrame(columns=list(PARTIAL_COLUMNS))
    edges = edges.assign(role=edges["role"].fillna(""), relevance=edges["relevance"].fillna(0.0))
    edges = edges.sort_values([*KEY, "prompt", "weight"], ignore_index=True)
    svs = FlatLists.of(edges["svs"].tolist())
    partials = _partials(edges.drop(columns="svs"), svs)
    return partials.assign(batch=-1).reindex(columns=list(PARTIAL_COLUMNS))


def prediction_signals(
    store: GraphStore, run: str, prompts: Sequence[Prompt], *, model: str
) -> list[dict]:
    """The run's seeds as per-prompt edges ``head -> logits`` (side ``logit``, role: the
    source token's); writes the ``logits`` node if missing."""
    from headgraph.ingest.jobs.graph_rows import logits_component

    roles = {p.id: p for p in prompts}
    if not store.query(
        "MATCH (c:Component) WHERE c.key = $key RETURN c.key AS k", {"key": f"{model}|logits"}
    ):
        store.write({"Component": logits_component(model)})
    return [
        {"upstream": r["upstream"], "head": "logits", "side": "logit", "weight": r["weight"],
         "role": roles[r["prompt"]].role_at(r["token"]), "prompt": r["prompt"], "svs": [],
         "relevance": r["share"]}
        for r in store.predicts_rows(run)
    ]  # fmt: skip
