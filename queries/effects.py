"""Measured causal effects of a run's edges (written by ``headgraph verify``), and reading them.

One ``Effect`` node per (run, edge, mode, ablate or boost): the edge
``upstream -> head`` on ``side``, the metric, the prompts it was measured on,
and the mean changes of the metric: ``effect`` (the edge's singular directions
changed), ``control`` (random singular vectors of the head instead) and their
``difference``, with its standard error. Measuring again replaces the node.
"""

from __future__ import annotations

from typing import Any

from headgraph.names import EDGE_SIDES
from headgraph.queries.store import GraphStore

COLUMNS = ("upstream", "head", "side", "mode", "boost", "metric", "prompts", "clean")
COLUMNS += ("effect", "control", "difference", "stderr", "measured")


def effect_key(run: str, row: dict[str, Any]) -> str:
    mode = row["mode"] + ("+boost" if row["boost"] else "")
    return f"{run}|{row['upstream']}->{row['head']}:{row['side']}|{mode}"


def write_effects(store: GraphStore, run: str, rows: list[dict[str, Any]]) -> None:
    """Store measured effects (dicts with :data:`COLUMNS`), replacing earlier ones, atomically."""
    if not rows:
        return
    keys = [effect_key(run, r) for r in rows]
    table = {"key": keys, "run": [run] * len(rows)}
    table |= {c: [r[c] for r in rows] for c in COLUMNS}
    delete = [("MATCH (e:Effect) WHERE e.key = $key DELETE e", {"key": k}) for k in keys]
    store.write({"Effect": table}, delete=delete)


def read_effects(store: GraphStore, run: str) -> list[dict[str, Any]]:
    """Every effect measured on a run, the largest change first (empty if none, or an old store)."""
    columns = ", ".join(f"e.{c} AS {c}" for c in COLUMNS)
    rows = store.query_if_present(
        f"MATCH (e:Effect) WHERE e.run = $run RETURN {columns}", {"run": run}
    )
    return sorted(rows, key=lambda r: (r["difference"], r["upstream"], r["head"], r["side"]))


def effects_by_edge(store: GraphStore, run: str) -> dict[tuple[str, str, str], dict]:
    """``(upstream, head, side) -> effect`` for every measured edge of a run: its ablation
    before its boost, global before local."""
    rows = sorted(read_effects(store, run), key=lambda r: (r["boost"], r["mode"] != "global"))
    out: dict[tuple[str, str, str], dict] = {}
    for r in rows:
        out.setdefault((r["upstream"], r["head"], r["side"]), r)
    return out


def effect_of(store: GraphStore, run: str, upstream: str, head: str, side: str) -> dict | None:
    """The effect measured for one edge (ablation before boost, global before local), or None."""
    return effects_by_edge(store, run).get((upstream, head, side))


def strongest_edges(store: GraphStore, run: str, top: int) -> list[tuple[str, str, str, int]]:
    """The run's ``top`` edges ``(upstream, head, side, prompts)`` that can be ablated (not a
    head's own QK bias, not a seed's edge into the logits): the most relevant first
    (relevance summed over the edge's roles), then those in the most prompts (the most
    over the edge's roles)."""
    rows = store.query(
        "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run "
        "RETURN a.name AS up, b.name AS head, c.side AS side, c.prompts AS prompts, "
        "coalesce(c.relevance, 0.0) AS relevance",
        {"run": run},
    )
    best: dict[tuple[str, str, str], int] = {}
    relevance: dict[tuple[str, str, str], float] = {}
    for r in rows:
        # a seed's edge reads no input of a head
        if not r["up"].endswith(":qk_bias") and r["side"] in EDGE_SIDES:
            key = (r["up"], r["head"], r["side"])
            best[key] = max(best.get(key, 0), int(r["prompts"]))
            relevance[key] = relevance.get(key, 0.0) + float(r["relevance"])
    ranked = sorted(best.items(), key=lambda kv: (-round(relevance[kv[0]], 9), -kv[1], kv[0]))
    ranked = ranked[:top]
    return [(*key, n) for key, n in ranked]
