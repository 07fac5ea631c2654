"""Traced batches as rows of the graph's tables (``queries.schema``), column by column.

Keys: a component is ``{model}|{name}`` (``gpt2|9.9``), a singular vector
``{model}|{L.H}|{k}``, a prompt ``{run}|{prompt id}``, a firing
``{run}|{prompt id}|{L.H}|{dest}|{source}``, a site
``{run}|{prompt id}|{component}|{token}``.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from headgraph.errors import InputError
from headgraph.ingest.core.components import Component
from headgraph.ingest.core.trace import BatchTrace
from headgraph.ingest.core.vocab import all_top_tokens
from headgraph.ingest.jobs.aggregates import FlatLists, partial_rows
from headgraph.ingest.jobs.signal_rows import signal_rows
from headgraph.ingest.model.tokenizer import Tokenizer

if TYPE_CHECKING:
    from headgraph.ingest.core.records import Prompt
    from headgraph.ingest.model.adapter import Model

Rows = dict[str, list]  # column name -> values

SEPARATOR = "|"
SIGNAL_TABLES = ("SIGNAL:Firing", "SIGNAL:Site")  # SIGNAL rows, by the source's node type


def edge_count(tables: dict[str, Rows]) -> int:
    """How many SIGNAL relationships a batch's tables hold."""
    return sum(len(tables[t].get("from", ())) for t in SIGNAL_TABLES if t in tables)


def check_name(kind: str, value: str) -> None:
    """Run names and prompt ids become parts of keys: refuse the separator."""
    if not value or SEPARATOR in value:
        raise InputError(f"{kind} {value!r} must be non-empty and must not contain {SEPARATOR!r}")


def model_rows(model: Model) -> dict[str, Rows]:
    """The model, its components (qk_bias nodes included) and every head's singular vectors."""
    name, layout = model.key, model.layout
    components = [*layout.components]
    components += [
        Component("qk_bias", l, h) for l in range(model.n_layers) for h in range(model.n_heads)
    ]
    sigma = model.qk.S.tolist()  # [layer][head][rank]
    top = {k: v.tolist() for k, v in all_top_tokens(model).items()}  # [layer][head][rank][n]
    decode = _decoder(model.tokenizer)
    svs: Rows = defaultdict(list)
    has: Rows = defaultdict(list)
    for l in range(model.n_layers):
        for h in range(model.n_heads):
            for k, s in enumerate(sigma[l][h]):
                key = f"{name}|{l}.{h}|{k}"
                for column, value in (
                    ("key", key),
                    ("model", name),
                    ("head_name", f"{l}.{h}"),
                    ("layer", l),
                    ("head", h),
                    ("index", k),
                    ("sigma", s),
                    ("query_tokens", [decode(i) for i in top["query_ids"][l][h][k]]),
                    ("query_projections", top["query_values"][l][h][k]),
                    ("key_tokens", [decode(i) for i in top["key_ids"][l][h][k]]),
                    ("key_projections", top["key_values"][l][h][k]),
                ):
                    svs[column].append(value)
                has["from"].append(f"{name}|{l}.{h}")
                has["to"].append(key)
    return {
        "Model": {
            "key": [name],
            "n_layers": [model.n_layers],
            "n_heads": [model.n_heads],
            "d_model": [model.d_model],
            "d_head": [model.d_head],
        },
        "Component": {
            "key": [f"{name}|{c.name}" for c in components],
            "model": [name] * len(components),
            "name": [c.name for c in components],
            "kind": [c.kind for c in components],
            "layer": [c.layer for c in components],
            "head": [c.head for c in components],
        },
        "SingularVector": dict(svs),
        "HAS_SV": dict(has),
    }


def logits_component(model: str) -> Rows:
    """The ``logits`` node: where a run seeded from the prediction ends (its seeds' target)."""
    return {"key": [f"{model}|logits"], "model": [model], "name": ["logits"],
            "kind": ["logits"], "layer": [-1], "head": [-1]}  # fmt: skip


def _decoder(tokenizer) -> Callable[[int], str]:
    """One token id as text, memoised (a vocabulary has few tokens, prompts repeat them)."""
    return functools.lru_cache(maxsize=None)(lambda i: tokenizer.decode([i]))


def batch_rows(
    trace: BatchTrace,
    *,
    run: str,
    batch: int,
    tokenizer: Tokenizer,
    counterfactuals: Sequence[Prompt] | None = None,
) -> dict[str, Rows]:
    """Rows for one traced batch: prompts (with their ``counterfactuals``, under that
    baseline), firings, the SIGNAL relationships, and the batch's partial aggregates.

    ``SIGNAL`` rows come in two tables, ``SIGNAL:Firing`` (from the upstream
    head's traced firings at the token) and ``SIGNAL:Site`` (from the
    component itself, when it is not a head firing there).
    """
    f = trace.firings
    prompts = trace.prompts
    decode = _decoder(tokenizer)
    cols = {
        k: v.tolist()
        for k, v in (("b", f.batch), ("l", f.layer), ("h", f.head), ("d", f.dest), ("s", f.source))
    }
    sparse = trace.sparse_sets()
    traced = trace.traced.tolist()
    firing_key = [
        f"{run}|{prompts[b].id}|{l}.{h}|{d}|{s}"
        for b, l, h, d, s in zip(*cols.values(), strict=True)
    ]
    firings: Rows = {
        "key": firing_key,
        "run": [run] * len(firing_key),
        "prompt": [prompts[b].id for b in cols["b"]],
        "head_name": [f"{l}.{h}" for l, h in zip(cols["l"], cols["h"], strict=True)],
        "layer": cols["l"],
        "head": cols["h"],
        "dest": cols["d"],
        "source": cols["s"],
        "dest_role": [prompts[b].role_at(d) for b, d in zip(cols["b"], cols["d"], strict=True)],
        "source_role": [prompts[b].role_at(s) for b, s in zip(cols["b"], cols["s"], strict=True)],
        "attention": f.attention.tolist(),
        "score": f.score.tolist(),
        "svs": [list(svs) for svs, _ in sparse],
        "terms": [list(t) for _, t in sparse],
        "traced": traced,
        "batch": [batch] * len(firing_key),
    }
    keys = np.array(firing_key, dtype=object)
    signals = signal_rows(trace, run=run, batch=batch, firing_key=keys)
    sites = dict(signals.sites)
    predictions, predicts = _prediction_rows(trace, run, batch, firing_key, decode, sites)
    prompt_rows: Rows = {
        "key": [f"{run}|{p.id}" for p in prompts],
        "run": [run] * len(prompts),
        "id": [p.id for p in prompts],
        "text": [p.text for p in prompts],
        "tokens": [list(p.tokens) for p in prompts],
        "words": [[decode(t) for t in p.tokens] for p in prompts],
        "roles": [json.dumps(dict(p.roles)) for p in prompts],
        "batch": [batch] * len(prompts),
        "counterfactual": [list(c.tokens) for c in counterfactuals or ()] or [[]] * len(prompts),
    }
    site_columns = ("prompt", "component", "kind", "layer", "head", "token", "role")
    site_rows: Rows = {
        "key": list(sites),
        "run": [run] * len(sites),
        **{column: [v[k] for v in sites.values()] for k, column in enumerate(site_columns)},
        "batch": [batch] * len(sites),
    }
    tables = {
        "Prompt": prompt_rows,
        "Firing": firings,
        "Site": site_rows,
        "SIGNAL:Firing": signals.from_firing,
        "SIGNAL:Site": signals.from_site,
        "Prediction": predictions,
        "PREDICTS:Firing": dict(predicts["Firing"]),
        "PREDICTS:Site": dict(predicts["Site"]),
    }
    tables["Partial"] = partial_rows(
        run,
        batch,
        heads=np.array(firings["head_name"], dtype=object),
        prompts=np.array(firings["prompt"], dtype=object),
        svs=FlatLists.of(firings["svs"]),
        signals=signals,
    )
    return tables


def _prediction_rows(trace: BatchTrace, run: str, batch: int, firing_key, decode, sites):
    """Prediction nodes and PREDICTS rows of a batch seeded from the prediction (else empty).

    A seed's PREDICTS relationship starts at its firing (answer position -> source); a
    seed at token 0 (which never fires) has no firing, and starts at the head's site.
    """
    predicts: dict[str, Rows] = {"Firing": defaultdict(list), "Site": defaultdict(list)}
    split, seeded, prompts = trace.prediction, trace.seeded, trace.prompts
    if split is None or seeded is None:
        return {}, predicts
    f = trace.firings
    index = {
        key: i
        for i, key in enumerate(
            zip(*(t.tolist() for t in (f.batch, f.layer, f.head, f.dest, f.source)), strict=True)
        )
    }
    dest = split.dest.tolist()
    seeds = seeded.batch.bincount(minlength=len(prompts)).tolist()
    logit = (split.total + split.bias).tolist()
    rows: Rows = {
        "key": [f"{run}|{p.id}" for p in prompts],
        "run": [run] * len(prompts),
        "prompt": [p.id for p in prompts],
        "dest": dest,
        "answer": [-1 if p.answer is None else p.answer for p in prompts],
        "wrong": [-1 if p.wrong is None else p.wrong for p in prompts],
        "answer_set": [list(p.answer_set) for p in prompts],
        "wrong_set": [list(p.wrong_set) for p in prompts],
        "answer_word": ["" if p.answer is None else decode(p.answer) for p in prompts],
        "wrong_word": ["" if p.wrong is None else decode(p.wrong) for p in prompts],
        "measure": [split.measure] * len(prompts),
        "value": logit,
        "baseline": split.bias.tolist(),
        "correct": split.correct.tolist(),
        "seeds": seeds,
        "batch": [batch] * len(prompts),
    }
    columns = (seeded.batch, seeded.layer, seeded.head, seeded.source, seeded.weight, seeded.share)
    for b, l, h, s, weight, share in zip(*(t.tolist() for t in columns), strict=True):
        prompt, at = prompts[b], dest[b]
        i = index.get((b, l, h, at, s))
        if i is not None:
            table, source = predicts["Firing"], firing_key[i]
        else:
            source = f"{run}|{prompt.id}|{l}.{h}|{at}"
            sites[source] = (prompt.id, f"{l}.{h}", "head", l, h, at, prompt.role_at(at))
            table = predicts["Site"]
        for column, value in (
            ("from", source), ("to", f"{run}|{prompt.id}"), ("upstream", f"{l}.{h}"),
            ("token", s), ("weight", weight), ("share", share), ("batch", batch),
        ):  # fmt: skip
            table[column].append(value)
    return rows, predicts
