"""A traced batch's rows for the store, against its edge and firing records."""

import dataclasses
from collections import defaultdict

import numpy as np
import pytest
import torch

from headgraph.ingest.core.trace import trace
from headgraph.ingest.jobs.aggregates import FlatLists, _singular_vectors
from headgraph.ingest.jobs.graph_rows import batch_rows
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model

RUN = "r"


@pytest.fixture(scope="module", params=["tiny-ioi", "random:pythia"])
def traced(request):
    model = load_model(request.param)
    prompts = task_prompts(model, 24, seed=3)
    (batch,) = trace(model, prompts, seeds=default_seeds(model), batch_size=24)
    return model, batch


def expected_signals(batch):
    """SIGNAL rows edge by edge, from the records: from each traced firing of the upstream
    head that ends at the token (relevance split over them), else from the site."""
    traced = defaultdict(list)  # (prompt, layer, head, dest) -> firing keys, in order
    for f in batch.firing_records(traced_only=True):
        key = f"{RUN}|{f.prompt_id}|{f.layer}.{f.head}|{f.dest}|{f.source}"
        traced[(f.prompt_id, f.layer, f.head, f.dest)].append(key)
    rows = {"Firing": [], "Site": []}
    for e in batch.edge_records():
        to = f"{RUN}|{e.prompt_id}|{e.layer}.{e.head}|{e.dest}|{e.source}"
        up = e.upstream
        fired = traced.get((e.prompt_id, up.layer, up.head, e.token)) if up.kind == "head" else None
        sources = fired or [f"{RUN}|{e.prompt_id}|{up.name}|{e.token}"]
        relevance = e.relevance / len(sources)
        for source in sources:
            row = (source, to, up.name, e.side, e.token, e.weight, e.share, relevance)
            rows["Firing" if fired else "Site"].append(row)
    return rows


def with_second_firings(batch):
    """The batch with a copy of each traced firing that an edge leaves, at another source:
    where an upstream head fires twice at the token (which a trace may find)."""
    f = batch.firings
    edge_up = batch.edge_component
    heads = batch.layout.head_columns()  # [layer, head] -> axis position
    up_at = defaultdict(set)  # (prompt, token) -> the upstream components of edges there
    for b, c, t in zip(f.batch[batch.edge_firing].tolist(), edge_up.tolist(),
                       batch.edge_token.tolist(), strict=True):  # fmt: skip
        up_at[(b, t)].add(c)
    copy = [
        i
        for i in range(len(f))
        if batch.traced[i] and f.source[i] > 0
        and int(heads[f.layer[i], f.head[i]]) in up_at.get((int(f.batch[i]), int(f.dest[i])), ())
    ]  # fmt: skip
    assert copy
    rows = torch.tensor(copy)
    grown = {
        name: torch.cat([getattr(f, name), getattr(f, name)[rows]])
        for name in f.__dataclass_fields__
    }
    grown["source"] = torch.cat([f.source, f.source[rows] - 1])
    return dataclasses.replace(
        batch,
        firings=type(f)(**grown),
        traced=torch.cat([batch.traced, batch.traced[rows]]),
    )


@pytest.mark.parametrize("twice", [False, True], ids=["as traced", "firing twice"])
def test_signal_rows_are_the_edges_copied_from_each_upstream_firing(traced, twice):
    model, batch = traced
    if twice:
        batch = with_second_firings(batch)
    tables = batch_rows(batch, run=RUN, batch=0, tokenizer=model.tokenizer)
    expected = expected_signals(batch)
    columns = ("from", "to", "upstream", "side", "token", "weight", "share", "relevance")
    for kind in ("Firing", "Site"):
        got = tables[f"SIGNAL:{kind}"]
        assert list(zip(*(got[c] for c in columns), strict=True)) == expected[kind]
        assert set(got["batch"]) == {0}
    assert expected["Firing"] and expected["Site"]
    copies = defaultdict(int)
    for _, to, up, side, token, *_ in expected["Firing"]:
        copies[(to, up, side, token)] += 1
    assert max(copies.values()) == (2 if twice else 1)
    # each site once, in order of first use, every one an edge leaves
    sites = tables["Site"]["key"]
    assert len(sites) == len(set(sites))
    assert list(dict.fromkeys(r[0] for r in expected["Site"])) == sites
    firing_keys = set(tables["Firing"]["key"])
    assert {r[1] for kind in expected for r in expected[kind]} <= firing_keys
    assert {r[0] for r in expected["Firing"]} <= firing_keys


def test_partials_count_each_edge_and_each_singular_vector_of_its_firing(traced):
    model, batch = traced
    tables = batch_rows(batch, run=RUN, batch=0, tokenizer=model.tokenizer)
    partials = tables["Partial"]
    edges = len(tables["SIGNAL:Firing"]["from"]) + len(tables["SIGNAL:Site"]["from"])
    assert sum(partials["weights"]) == edges
    svs_of = dict(zip(tables["Firing"]["key"], tables["Firing"]["svs"], strict=True))
    into = tables["SIGNAL:Firing"]["to"] + tables["SIGNAL:Site"]["to"]
    assert sum(map(sum, partials["sv_counts"])) == sum(len(svs_of[k]) for k in into)
    weight = sum(tables["SIGNAL:Firing"]["weight"]) + sum(tables["SIGNAL:Site"]["weight"])
    assert sum(partials["weight_sum"]) == pytest.approx(weight, rel=1e-9)
    for counts in partials["sv_counts"]:
        assert counts == sorted(counts, reverse=True)


def test_flat_lists_take_rows_with_repeats():
    lists = FlatLists.of([[3, 1], [], [7], [5, 6, 4]])
    taken = lists.take(np.array([3, 0, 3, 1, 2]))
    assert taken.lengths.tolist() == [3, 2, 3, 0, 1]
    assert taken.values.tolist() == [5, 6, 4, 3, 1, 5, 6, 4, 7]


def singular_vectors_by_hand(group, sv, n, n_groups):
    """Each group's vectors and summed counts, most often first, then by index."""
    totals = defaultdict(lambda: defaultdict(int))
    for g, k, c in zip(group.tolist(), sv.tolist(), n.tolist(), strict=True):
        totals[g][k] += int(c)
    ordered = [sorted(totals[g].items(), key=lambda kc: (-kc[1], kc[0])) for g in range(n_groups)]
    return [[k for k, _ in o] for o in ordered], [[c for _, c in o] for o in ordered]


@pytest.mark.parametrize(
    ("n_groups", "scale"),
    [(40, 1), (200_000, 1), (200_000, 2**42)],
    ids=["counted in place", "sorted: few pairs, many groups", "counts too large for one key"],
)
def test_singular_vectors_of_groups_are_summed_and_ranked(n_groups, scale):
    rng = np.random.default_rng(0)
    pairs = 3000
    group = rng.choice(n_groups, size=pairs // 6)[rng.integers(0, pairs // 6, pairs)]  # repeats
    sv = rng.integers(0, 7, pairs)  # few vectors: many ties in the counts
    n = rng.integers(1, 4, pairs) * scale
    weights = n.astype(float)
    assert _singular_vectors(group, sv, weights, n_groups) == singular_vectors_by_hand(
        group, sv, n, n_groups
    )
    if scale == 1:  # counted once each
        ones = np.ones(pairs, dtype=np.int64)
        assert _singular_vectors(group, sv, None, n_groups) == singular_vectors_by_hand(
            group, sv, ones, n_groups
        )
