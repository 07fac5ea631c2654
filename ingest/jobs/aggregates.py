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

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from headgraph.ingest.core.records import Prompt
from headgraph.queries.store import GraphStore, Rows

KEY = ["upstream", "head", "side", "role"]
PARTIAL_COLUMNS = (*KEY, "batch", "prompts", "weight_sum", "weights", "svs", "sv_counts",
                   "relevance_sum")  # fmt: skip


def partial_rows(run: str, batch: int, tables: dict[str, Rows]) -> Rows:
    """A batch's partial aggregates, from its rows (:func:`.graph_rows.batch_rows`).

    An edge's role is that of its upstream end (a firing's destination, a site's token),
    its head and singular vectors those of the firing it enters.
    """
    firings = tables["Firing"]
    at = {key: i for i, key in enumerate(firings["key"])}
    role_of = dict(zip(firings["key"], firings["dest_role"], strict=True))
    role_of.update(zip(tables["Site"]["key"], tables["Site"]["role"], strict=True))
    signals = [tables.get(t) or {} for t in ("SIGNAL:Firing", "SIGNAL:Site")]
    to = [i for s in signals for i in map(at.__getitem__, s.get("to", ()))]
    if not to:
        return {}
    partials = _partials(
        pd.DataFrame(
            {
                "upstream": [u for s in signals for u in s.get("upstream", ())],
                "head": [firings["head_name"][i] for i in to],
                "side": [v for s in signals for v in s.get("side", ())],
                "role": [role_of[a] or "" for s in signals for a in s.get("from", ())],
                "prompt": [firings["prompt"][i] for i in to],
                "weight": [w for s in signals for w in s.get("weight", ())],
                "relevance": [r for s in signals for r in s.get("relevance", ())],
                "svs": [firings["svs"][i] for i in to],
            }
        )
    )
    keys = zip(*(partials[k].tolist() for k in KEY), strict=True)
    return {
        "key": [f"{run}|{batch}|{u}->{h}:{s}@{r}" for u, h, s, r in keys],
        "run": [run] * len(partials),
        "batch": [batch] * len(partials),
        **{column: partials[column].tolist() for column in PARTIAL_COLUMNS if column != "batch"},
    }


def _partials(edges: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt edges (``upstream``, ``head``, ``side``, ``role``, ``prompt``, ``weight``,
    ``relevance``, and the ``svs`` of the firing each enters) summed per (upstream, head,
    side, role), in row order: one partial each (columns :data:`PARTIAL_COLUMNS` but
    ``batch``), sorted by key."""
    groups = edges.groupby(KEY, sort=True)
    sums = groups.agg(
        prompts=("prompt", "nunique"),
        weight_sum=("weight", "sum"),
        weights=("weight", "size"),
        relevance_sum=("relevance", "sum"),
    )
    svs, sv_counts = _singular_vectors(groups.ngroup().to_numpy(), edges["svs"].tolist(), None,
                                       len(sums))  # fmt: skip
    return sums.reset_index().assign(svs=svs, sv_counts=sv_counts)


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
    svs, sv_counts = _singular_vectors(
        groups.ngroup().to_numpy(), frame["svs"].tolist(), frame["sv_counts"].tolist(), len(keys)
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


def _singular_vectors(group: np.ndarray, svs: list, counts: list | None, n_groups: int):
    """Each group's singular vectors and their summed counts (``counts`` None: each listed
    once), most often first, then by index: ``(svs, counts)``, a list per group."""
    lengths = np.array([len(v) for v in svs], dtype=np.int64)
    flat_group = np.repeat(group, lengths)
    flat_sv = _flat(svs)
    flat_n = np.ones_like(flat_sv) if counts is None else _flat(counts)
    width = int(flat_sv.max()) + 1 if len(flat_sv) else 1
    code = flat_group * width + flat_sv
    codes, where = np.unique(code, return_inverse=True)
    totals = np.bincount(where, weights=flat_n).astype(np.int64)
    g, k = codes // width, codes % width
    order = np.lexsort((k, -totals, g))  # by group, most often first, then index
    bounds = np.searchsorted(g[order], np.arange(n_groups + 1)).tolist()
    k, totals = k[order].tolist(), totals[order].tolist()
    pairs = [(k[a:b], totals[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _flat(lists: list) -> np.ndarray:
    """Lists of integers, end to end."""
    return np.concatenate([np.asarray(v, dtype=np.int64) for v in lists] or [np.zeros(0, int)])


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
    return _partials(edges).assign(batch=-1).reindex(columns=list(PARTIAL_COLUMNS))


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
