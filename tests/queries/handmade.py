"""A small hand-built run whose answers are known, written through the store like any run.

Model ``hand``: 2 layers of 2 heads. Every prompt has tokens A (0), B (1), END (2).
The target is head 1.0 firing END -> A. Shares are chosen so every score is exact.

- ``p1``, a diamond of two substitute routes:
  ``embed@A -key(.6)-> 0.0@END -query(.4)-> 1.0@END`` and
  ``pos_embed@B -key(.5)-> 0.1@END -query(.3)-> 1.0@END``: 0.0 and 0.1 both feed
  1.0's query side at END through its singular vector 0; two node-disjoint routes;
  nothing critical. Plus the constant ``1.0:qk_bias@END -query(.08)->`` (no input).
- ``p2``, a chain through one critical node: ``embed@A -key(.7)-> 0.0@END -query(.5)->``
  and ``pos_embed@END -query(.2)-> 0.0@END``: one disjoint route; 0.0 critical.
- ``p3``: 0.0 fires, 1.0 does not (prompts are counted over all three).
"""

from __future__ import annotations

import json
from collections import defaultdict

from headgraph.ingest.jobs.aggregates import carries_rows, edge_partials

RUN, MODEL = "hand", "hand"
ROLES = {"A": 0, "B": 1, "END": 2}
# (prompt, upstream component, token, site?, target head, dest, source, side, share)
EDGES = [
    ("p1", "embed", 0, True, "0.0", 2, 0, "key", 0.6),
    ("p1", "0.0", 2, False, "1.0", 2, 0, "query", 0.4),
    ("p1", "pos_embed", 1, True, "0.1", 2, 1, "key", 0.5),
    ("p1", "0.1", 2, False, "1.0", 2, 0, "query", 0.3),
    ("p1", "1.0:qk_bias", 2, True, "1.0", 2, 0, "query", 0.08),
    ("p2", "embed", 0, True, "0.0", 2, 0, "key", 0.7),
    ("p2", "pos_embed", 2, True, "0.0", 2, 0, "query", 0.2),
    ("p2", "0.0", 2, False, "1.0", 2, 0, "query", 0.5),
    ("p3", "embed", 0, True, "0.0", 2, 0, "key", 0.9),
]
# The sparse set S of each firing: (prompt, head) -> singular vectors.
SPARSE = {("p1", "0.0"): [1], ("p1", "0.1"): [1, 0], ("p1", "1.0"): [0]}
SPARSE |= {("p2", "0.0"): [1], ("p2", "1.0"): [0, 1], ("p3", "0.0"): [0]}
KINDS = {"embed": "embed", "pos_embed": "pos_embed", "1.0:qk_bias": "qk_bias"}


def tables() -> tuple[dict, dict]:
    """(model tables, the run's batch tables) in the store's row format."""
    heads = [f"{l}.{h}" for l in range(2) for h in range(2)]
    components = ["embed", "pos_embed", *heads, "attn_bias0", "attn_bias1"]
    components += [f"{h}:qk_bias" for h in heads]
    model = {
        "Model": {"key": [MODEL], "n_layers": [2], "n_heads": [2], "d_model": [4], "d_head": [2]},
        "Component": _columns(
            {
                "key": f"{MODEL}|{c}",
                "model": MODEL,
                "name": c,
                "kind": _kind(c),
                "layer": int(c[0]) if c[0].isdigit() else (int(c[-1]) if "attn" in c else -1),
                "head": int(c[2]) if c[0].isdigit() else -1,
            }
            for c in components
        ),
        "SingularVector": _columns(
            {
                "key": f"{MODEL}|{h}|{k}",
                "model": MODEL,
                "head_name": h,
                "layer": int(h[0]),
                "head": int(h[2]),
                "index": k,
                "sigma": 2.0 - k,
                "query_tokens": [f"q{h}:{k}", "B"],
                "query_projections": [0.9, -0.5],
                "key_tokens": [f"k{h}:{k}", "A"],
                "key_projections": [0.8, 0.4],
            }
            for h in heads
            for k in range(2)
        ),
        "HAS_SV": {
            "from": [f"{MODEL}|{h}" for h in heads for _ in range(2)],
            "to": [f"{MODEL}|{h}|{k}" for h in heads for k in range(2)],
        },
    }
    firings, sites, signals = {}, {}, defaultdict(lambda: defaultdict(list))
    for prompt, up, token, site, head, dest, source, side, share in EDGES:
        key = f"{RUN}|{prompt}|{head}|{dest}|{source}"
        svs = SPARSE[(prompt, head)]
        firings[key] = {
            "key": key,
            "run": RUN,
            "prompt": prompt,
            "head_name": head,
            "layer": int(head[0]),
            "head": int(head[2]),
            "dest": dest,
            "source": source,
            "dest_role": _role(dest),
            "source_role": _role(source),
            "attention": 0.9,
            "score": 10.0,
            "svs": svs,
            "terms": [10.0 / len(svs)] * len(svs),
            "traced": True,
            "batch": 0,
        }
        if site:
            start = f"{RUN}|{prompt}|{up}|{token}"
            layer = int(up[0]) if up[0].isdigit() else -1
            sites[start] = {
                "key": start,
                "run": RUN,
                "prompt": prompt,
                "component": up,
                "kind": KINDS[up],
                "layer": layer,
                "head": int(up[2]) if up[0].isdigit() else -1,
                "token": token,
                "role": _role(token),
                "batch": 0,
            }
        else:  # from the upstream head's firing that ends at this token
            start = next(k for k in firings if k.startswith(f"{RUN}|{prompt}|{up}|{token}|"))
        table = signals["SIGNAL:Site" if site else "SIGNAL:Firing"]
        for column, value in (
            ("from", start),
            ("to", key),
            ("upstream", up),
            ("side", side),
            ("token", token),
            ("weight", share * 10.0),
            ("share", share),
            ("batch", 0),
            ("relevance", share / 2),
        ):
            table[column].append(value)
    prompts = ["p1", "p2", "p3"]
    batch = {
        "Prompt": _columns(
            {
                "key": f"{RUN}|{p}",
                "run": RUN,
                "id": p,
                "text": "A B END",
                "tokens": [1, 2, 3],
                "words": ["A", "B", "END"],
                "roles": json.dumps(ROLES),
                "batch": 0,
                "counterfactual": [],
            }
            for p in prompts
        ),
        "Firing": _columns(firings.values()),
        "Site": _columns(sites.values()),
        **{name: dict(table) for name, table in signals.items()},
    }
    return model, batch


def write(store) -> None:
    """Write the hand-made run (and its aggregates) into an empty store."""
    model, batch = tables()
    store.start_run(
        {
            "key": RUN,
            "model": MODEL,
            "task": "hand",
            "params": "{}",
            "status": "running",
            "started": "2026-01-01T00:00:00",
            "finished": "",
            "prompts": 3,
            "batches": 1,
            "done_batches": [],
            "firings": 0,
            "edges": 0,
        },
        model,
    )
    store.write_batch(RUN, 0, batch)
    signals = store.signal_rows(RUN)
    store.finish_run(
        RUN,
        carries_rows(edge_partials(signals), model=MODEL, run=RUN, n_prompts=3),
        {"status": "complete", "firings": len(batch["Firing"]["key"]), "edges": len(EDGES)},
    )


def _kind(component: str) -> str:
    if component.endswith(":qk_bias"):
        return "qk_bias"
    if component.startswith("attn_bias"):
        return "attn_bias"
    return KINDS.get(component, "head")


def _role(token: int) -> str:
    return {v: k for k, v in ROLES.items()}[token]


def _columns(rows) -> dict[str, list]:
    rows = list(rows)
    return {c: [r[c] for r in rows] for c in rows[0]}
