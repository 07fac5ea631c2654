"""Per-head statistics of a run's firings, for the paper's figures.

- the size of the sparse set |S| of every firing, per head (how sparse the
  decomposition is: the paper's histograms);
- how often each singular vector is in S, per head, over the run's firings
  and prompts (singular-vector usage).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from headgraph.queries.selection import resolve_run
from headgraph.queries.store import GraphStore


def sparse_set_sizes(store: GraphStore, *, run: str | None = None) -> dict[str, Counter]:
    """Head -> Counter of |S| over the head's firings in the run."""
    ref = resolve_run(store, run)
    sizes: dict[str, Counter] = defaultdict(Counter)
    for row in store.query(
        "MATCH (f:Firing) WHERE f.run = $run RETURN f.head_name AS head, size(f.svs) AS n",
        {"run": ref.key},
    ):
        sizes[row["head"]][int(row["n"])] += 1
    return dict(sizes)


def singular_vector_usage(
    store: GraphStore, *, heads: list[str], run: str | None = None
) -> dict[str, dict[int, tuple[int, int]]]:
    """Head -> singular vector -> (firings with it in S, prompts with such a firing)."""
    ref = resolve_run(store, run)
    names = [ref.head(h) for h in heads]
    usage = {}
    for head in names:
        firings, prompts = Counter(), defaultdict(set)
        for row in store.query(
            "MATCH (f:Firing) WHERE f.run = $run AND f.head_name = $head "
            "RETURN f.prompt AS prompt, f.svs AS svs",
            {"run": ref.key, "head": head},
        ):
            for k in row["svs"]:
                firings[int(k)] += 1
                prompts[int(k)].add(row["prompt"])
        usage[head] = {k: (firings[k], len(prompts[k])) for k in sorted(firings)}
    return usage
