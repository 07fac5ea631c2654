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

from collections import Counter, defaultdict
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
    frame = pd.DataFrame(
        {
            "upstream": [u for s in signals for u in s.get("upstream", ())],
            "head": [firings["head_name"][i] for i in to],
            "side": [v for s in signals for v in s.get("side", ())],
            "role": [role_of[a] or "" for s in signals for a in s.get("from", ())],
            "prompt": [firings["prompt"][i] for i in to],
            "weight": [w for s in signals for w in s.get("weight", ())],
            "relevance": [r for s in signals for r in s.get("relevance", ())],
            "edge": range(len(to)),
        }
    )
    if frame.empty:
        return {}
    groups = frame.groupby(KEY, sort=True)
    sums = groups.agg(
        prompts=("prompt", "nunique"),
        weight_sum=("weight", "sum"),
        weights=("weight", "size"),
        relevance_sum=("relevance", "sum"),
    )
    # singular vectors: each edge counts the S of the firing it enters
    svs = frame[[*KEY, "edge"]].assign(sv=[firings["svs"][i] for i in to]).explode("sv")
    svs = svs.dropna(subset=["sv"]).groupby([*KEY, "sv"], sort=True).size()
    sv_lists: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
    for (*key, sv), n in zip(svs.index, svs.to_numpy().tolist(), strict=True):
        sv_lists[tuple(key)][0].append(int(sv))
        sv_lists[tuple(key)][1].append(n)
    keys = list(sums.index)
    names = [f"{run}|{batch}|{u}->{h}:{s}@{r}" for u, h, s, r in keys]
    return {
        "key": names,
        "run": [run] * len(keys),
        **{column: [k[i] for k in keys] for i, column in enumerate(KEY)},
        "batch": [batch] * len(keys),
        "prompts": sums["prompts"].astype(int).tolist(),
        "weight_sum": sums["weight_sum"].astype(float).tolist(),
        "weights": sums["weights"].astype(int).tolist(),
        "svs": [sv_lists[k][0] for k in keys],
        "sv_counts": [sv_lists[k][1] for k in keys],
        "relevance_sum": sums["relevance_sum"].astype(float).tolist(),
    }


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


def _singular_vectors(group: np.ndarray, svs: list, counts: list, n_groups: int):
    """Each group's singular vectors and their summed counts, most often first, then by
    index: ``(svs, counts)``, a list per group."""
    lengths = np.array([len(v) for v in svs], dtype=np.int64)
    flat_group = np.repeat(group, lengths)
    flat_sv = np.concatenate([np.asarray(v, dtype=np.int64) for v in svs] or [np.zeros(0, int)])
    flat_n = np.concatenate([np.asarray(v, dtype=np.int64) for v in counts] or [np.zeros(0, int)])
    width = int(flat_sv.max()) + 1 if len(flat_sv) else 1
    code = flat_group * width + flat_sv
    codes, where = np.unique(code, return_inverse=True)
    totals = np.bincount(where, weights=flat_n).astype(np.int64)
    g, k = codes // width, codes % width
    order = np.lexsort((k, -totals, g))  # by group, most often first, then index
    bounds = np.searchsorted(g[order], np.arange(n_groups + 1))
    k, totals = k[order].tolist(), totals[order].tolist()
    pairs = [(k[a:b], totals[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def edge_partials(signals: Iterable[dict]) -> pd.DataFrame:
    """Per-prompt edges (``upstream``, ``head``, ``side``, ``role``, ``prompt``, ``weight``,
    ``svs``, ``relevance``) as partials of one batch: the seeds' edges into the logits, and
    the edges of a run whose batches were written before partials existed."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in signals:
        groups[tuple(s[k] or "" for k in KEY)].append(s)
    out = []
    for key, group in sorted(groups.items()):
        counts = Counter(k for s in group for k in s["svs"])
        out.append(
            {
                **dict(zip(KEY, key, strict=True)),
                "batch": -1,
                "prompts": len({s["prompt"] for s in group}),
                "weight_sum": sum(sorted(s["weight"] for s in group)),
                "weights": len(group),
                "svs": sorted(counts),
                "sv_counts": [counts[k] for k in sorted(counts)],
                "relevance_sum": sum(sorted(s.get("relevance") or 0.0 for s in group)),
            }
        )
    return pd.DataFrame(out, columns=list(PARTIAL_COLUMNS))


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
