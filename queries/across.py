"""Questions across runs: which runs use an edge, and which heads carry a label in every run."""

from __future__ import annotations

from collections import defaultdict

from headgraph.names import EdgeKey, model_name
from headgraph.queries.store import GraphStore

USES = (
    "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE a.name = $up AND b.name = $head "
    "AND c.side = $side RETURN c.run AS run, c.role AS role, c.prompts AS prompts, "
    "c.share_of_prompts AS share"
)


def runs_with_edge(store: GraphStore, edge: EdgeKey) -> list[dict]:
    """Every run whose circuit has ``edge`` (at any token role), most prompts first:
    ``run``, ``model``, ``prompts`` (the most at one role), ``share_of_prompts``, ``roles``."""
    found: dict[str, list[dict]] = defaultdict(list)
    for row in store.query(USES, {"up": edge.upstream, "head": edge.head, "side": edge.side}):
        found[row["run"]].append(row)
    models = {r["run"]: model_name(r["model"] or "") for r in store.runs()}
    out = []
    for run, rows in found.items():
        best = max(rows, key=lambda r: r["prompts"])
        out.append({"run": run, "model": models.get(run, ""), "prompts": int(best["prompts"]),
                    "share_of_prompts": float(best["share"]),
                    "roles": ",".join(sorted(r["role"] or "-" for r in rows))})  # fmt: skip
    return sorted(out, key=lambda r: (-r["prompts"], r["run"]))
