"""The value and inhibition sides, baseline-relative contributions, the signed edge rule and
relevance (docs/core.md, "Beyond the QK trace")."""

import dataclasses
import json

import pytest
import torch

from headgraph.errors import InputError
from headgraph.ingest.core.contributions import read_tokens, select_edges
from headgraph.ingest.core.params import SIDE_NAMES, RunParams, TraceParams
from headgraph.ingest.core.trace import trace
from headgraph.ingest.core.values import ReaderTable, ValueWeights, value_directions
from headgraph.ingest.jobs.trace_job import task_prompts
from headgraph.ingest.model import load_model

EVERY = ("query", "key", "value", "inhibit")


@pytest.fixture(scope="module")
def tiny():
    model = load_model("tiny-ioi")
    return model, task_prompts(model, 48, seed=4)


def test_value_contributions_add_up_to_what_the_firing_moves_along_its_reader():
    torch.manual_seed(0)
    n_comp, d_model, d_head = 5, 8, 3
    weights = ValueWeights(
        torch.randn(2, 2, d_model, d_head),
        torch.randn(2, 2, d_head),
        torch.randn(2, 2, d_head, d_model),
    )
    outputs = torch.randn(1, 4, n_comp, d_model)  # [batch, pos, component, d_model]
    scale = torch.rand(1, 4) + 0.5
    reader = torch.randn(3, d_model)
    attention, head, source = (
        torch.tensor([0.9, 0.6, 0.7]),
        torch.tensor([0, 1, 1]),
        torch.tensor([1, 2, 3]),
    )
    direction, _ = value_directions(reader, attention, weights, layer=1, head=head)
    reads = read_tokens(
        outputs, scale, [direction], batch=torch.zeros(3, dtype=torch.long), token=source,
        n_upstream=n_comp,
    )  # fmt: skip
    upstream, bias = reads.upstream, reads.bias
    x = outputs[0, source].sum(1) / scale[0, source, None]  # the value input at each source
    moved = torch.stack([
        (x[i] @ weights.W_V[1, h] + weights.b_V[1, h]) @ weights.W_O[1, h] @ reader[i]
        for i, h in enumerate(head.tolist())
    ]) * attention  # fmt: skip
    torch.testing.assert_close(upstream.sum(-1) + bias, moved, rtol=1e-5, atol=1e-5)


def test_the_readers_of_a_head_are_summed_per_prompt_head_and_token():
    table = ReaderTable(n_layers=2, n_heads=2, n_pos=5, n_batch=1)
    one = torch.ones(1, 3)
    table.add(torch.tensor([1]), torch.tensor([0]), torch.tensor([1]), torch.tensor([4]), one)
    table.add(torch.tensor([1, 0]), torch.tensor([0, 0]), torch.tensor([1, 1]),
              torch.tensor([4, 4]), 2 * torch.ones(2, 3))  # fmt: skip
    reader, has = table.take(1, torch.tensor([0, 0]), torch.tensor([1, 0]), torch.tensor([4, 4]))
    assert has.tolist() == [True, False]
    assert reader[0].tolist() == [3.0, 3.0, 3.0] and reader[1].abs().sum() == 0
    reader, has = table.take(0, torch.tensor([0]), torch.tensor([1]), torch.tensor([4]))
    assert has.tolist() == [True] and reader[0].tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("batches", [1, 2], ids=["fresh", "rows-kept-from-a-batch-before"])
def test_readers_added_in_many_products_sum_per_key_weighted_or_not_a_row_per_key(batches):
    """Readers of every layer, added in turn (weighted or not), sum per (layer, prompt, head,
    token); the table holds one row per key read (it grows as new keys come) and nothing
    for the keys never read, in new memory or in the rows a batch before left."""
    from headgraph.ingest.core.scratch import Scratch

    torch.manual_seed(1)
    n_layers, n_batch, n_heads, n_pos, d_model = 3, 2, 3, 4, 5
    kept = Scratch()
    for _ in range(batches):
        readers = ReaderTable(n_layers, n_heads, n_pos, n_batch=n_batch, rows=kept)
        expected = torch.zeros(n_layers, n_batch, n_heads, n_pos, d_model)
        read = torch.zeros(n_layers, n_batch, n_heads, n_pos, dtype=torch.bool)
        for step in range(6):
            table = torch.randn(7, d_model)
            n = 12
            rows, layer = torch.randint(0, 7, (n,)), torch.randint(0, n_layers, (n,))
            b, h, t = (
                torch.randint(0, n_batch, (n,)),
                torch.randint(0, n_heads, (n,)),
                torch.randint(0, n_pos, (n,)),
            )
            weight = torch.rand(n) + 0.5 if step % 2 else None  # every layer in one product
            readers.add_rows(layer, b, h, t, rows, table, weight=weight)
            added = table[rows] if weight is None else table[rows] * weight[:, None]
            expected.index_put_((layer, b, h, t), added, accumulate=True)
            read[layer, b, h, t] = True
    assert readers._used == int(read.sum()) < read.numel()  # a row per key read, no more
    every = torch.cartesian_prod(torch.arange(n_batch), torch.arange(n_heads), torch.arange(n_pos))
    for layer in range(n_layers):
        reader, has = readers.take(layer, *every.T)
        assert has.tolist() == read[layer][tuple(every.T)].tolist()
        torch.testing.assert_close(reader, expected[layer][tuple(every.T)])


def test_every_layers_upstream_sum_comes_from_one_pass_and_equals_its_prefix():
    from headgraph.ingest.core.baseline import upstream_sums

    components = torch.randn(2, 3, 9, 4)  # [batch, pos, component, d_model]
    bounds = [2, 2, 5, 9]
    summed = upstream_sums(components, bounds)
    assert summed.shape == (4, 2, 3, 4)
    for layer, n in enumerate(bounds):
        torch.testing.assert_close(summed[layer], components[:, :, :n].sum(2))


def test_the_signed_rule_needs_a_positive_total_and_reaches_its_share():
    contributions = torch.tensor([[5.0, 3.0, -4.0, 1.0], [1.0, -3.0, 0.5, 0.0]])
    positive = select_edges(contributions, frac=0.7, rule="positive")
    signed = select_edges(contributions, frac=0.7, rule="signed")
    assert positive.tolist() == [[True, True, False, False], [True, False, True, False]]
    assert signed.tolist() == [[True, False, False, False], [False] * 4]  # 5 >= 0.7 * 5


def test_a_seeds_value_signal_is_its_share_of_the_prediction(tiny):
    model, prompts = tiny
    assert seeds_value_signals_match(model, prompts, attention_threshold=0.5) > 10


@pytest.mark.parametrize(
    "preset", ["random:pythia", "random:gptj", "random:llama", "random:gemma2", "random:attn-only"]
)
def test_every_family_reads_a_seeds_value_as_its_share(preset):
    """Rotary (values not rotated), grouped heads, Gemma 2's frozen post-attention norm,
    shortformer positions (not in the values); probability-aware seeding runs on every side."""
    model = load_model(preset)
    prompts = task_prompts(model, 8, seed=1, task="induction")
    assert seeds_value_signals_match(model, prompts, attention_threshold=0.1) > 0
    params = TraceParams(seeding="prob", sides=EVERY, baseline="mean", attention_threshold=0.1)
    for batch in trace(model, prompts, seeds=(), params=params):
        assert torch.isfinite(batch.edge_relevance).all()


def seeds_value_signals_match(model, prompts, *, attention_threshold) -> int:
    """How many top-layer seeds were checked: their value signal is their share."""
    params = TraceParams(  # the identity holds for contributions as they are (no baseline)
        seeding="linear", sides=("value",), baseline="none",
        attention_threshold=attention_threshold,
    )  # fmt: skip
    top = model.n_layers - 1  # nothing above reads the last layer's heads
    checked = 0
    for batch in trace(model, prompts, seeds=(), params=params, batch_size=16):
        f, seeds = batch.firings, batch.seeded
        value = batch.edge_side == 2
        columns = (seeds.batch, seeds.layer, seeds.head, seeds.source, seeds.weight)
        for b, l, h, s, w in zip(*(t.tolist() for t in columns), strict=True):
            if l != top:
                continue
            row = ((f.batch == b) & (f.layer == l) & (f.head == h) & (f.source == s)
                   & (f.dest == batch.prediction.dest[b])).nonzero()  # fmt: skip
            if row.numel() == 0:  # token 0, which never fires: recorded from the head's site
                continue
            edges = value & (batch.edge_firing == row.item())
            signal = batch.edge_weight[edges] / batch.edge_share[edges]
            assert torch.allclose(signal, torch.tensor(w, dtype=signal.dtype), rtol=1e-3)
            checked += 1
    return checked


def test_tiny_ioi_carries_names_through_values_and_inhibits_the_subject_token_after(tiny):
    """Layer 0 moves each name one token forward through its values; layer 1 is kept off
    S1+1 (where that copy of the subject sits) by layer-0 heads: inhibition edges there."""
    model, prompts = tiny
    params = TraceParams(seeding="linear", sides=EVERY)
    records = [e for batch in trace(model, prompts, seeds=(), params=params)
               for e in batch.edge_records()]  # fmt: skip
    value = {(e.upstream.name, e.layer, e.role) for e in records if e.side == "value"}
    assert {("embed", 0, "IO"), ("embed", 0, "S2")} <= value
    inhibit = [e for e in records if e.side == "inhibit" and e.layer == 1 and e.role == "S1+1"]
    assert any(e.upstream.kind == "head" and e.upstream.layer == 0 for e in inhibit)
    assert all(0 <= e.relevance <= 1 + 1e-6 for e in records)


def test_measured_against_the_role_mean_a_constant_token_makes_no_edge(tiny):
    """END is always the same token: its embedding is its own mean."""
    model, prompts = tiny

    def end_embed_edges(baseline):
        params = TraceParams(seeding="linear", baseline=baseline)
        return [
            e for batch in trace(model, prompts, seeds=(), params=params)
            for e in batch.edge_records()
            if e.upstream.name == "embed" and e.role == "END"
        ]  # fmt: skip

    assert end_embed_edges("none")
    assert not end_embed_edges("mean")


def test_edge_options_are_recorded_and_read_back_and_older_runs_read_as_the_paper():
    params = TraceParams(
        seeding="linear", sides=("value", "query"), baseline="mean", edge_rule="signed"
    )
    assert params.sides == ("query", "value")  # canonical order
    run = RunParams.of([], (), params, 8)
    assert RunParams.from_json(run.to_json()).params == params
    legacy = json.loads(RunParams.of([], (), TraceParams.paper(), 8).to_json())
    assert "sides" not in legacy and "baseline" not in legacy  # as runs recorded before
    assert "weighting" not in legacy
    assert RunParams.from_json(json.dumps(legacy)).params == TraceParams.paper()
    default = json.loads(RunParams.of([], (), TraceParams(), 8).to_json())
    assert (default["sides"], default["baseline"]) == (list(SIDE_NAMES), "mean")
    assert default["weighting"] == "stakes"
    assert RunParams.from_json(json.dumps(default)).params == TraceParams()
    del default["weighting"]  # a run traced before the stakes: read back as it was traced
    assert RunParams.from_json(json.dumps(default)).params.weighting == "sensitivity"


@pytest.mark.parametrize(
    "bad",
    [
        {"sides": ("query", "values")},
        {"sides": ()},
        {"baseline": "abc"},
        {"edge_rule": "all"},
        {"weighting": "gradient"},
    ],
)
def test_bad_edge_options_are_refused_naming_the_choices(bad):
    with pytest.raises(InputError, match="use one of|give one or more"):
        TraceParams(**bad)


def test_measured_against_its_counterfactual_a_prompt_differs_only_where_the_names_do(tiny):
    """IOI's ABC corruption changes the three names: against it, the embeddings make edges
    only at name tokens; a prompt measured against itself makes no edge at all."""
    from headgraph.ingest.jobs.trace_job import task_counterfactuals

    model, prompts = tiny
    params = TraceParams(seeding="linear", baseline="counterfactual")

    def edges(counterfactuals):
        return [e for batch in trace(model, prompts, seeds=(), params=params,
                                     counterfactuals=counterfactuals)
                for e in batch.edge_records()]  # fmt: skip

    assert not edges(prompts)
    abc = edges(task_counterfactuals(model, prompts, task="ioi"))
    assert abc and {e.role for e in abc if e.upstream.name == "embed"} <= {"IO", "S1", "S2"}
    with pytest.raises(InputError, match="one counterfactual prompt per prompt"):
        next(trace(model, prompts, seeds=(), params=params))
    with pytest.raises(InputError, match="token for token"):
        longer = [dataclasses.replace(p, tokens=(*p.tokens, p.tokens[-1])) for p in prompts]
        next(trace(model, prompts, seeds=(), params=params, counterfactuals=longer))
