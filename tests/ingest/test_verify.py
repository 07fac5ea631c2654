"""Causal verification: the planted edge moves the metric and its control does not; tiny-ioi's
traced edges beat random controls on held-out prompts."""

import pytest
import torch

from headgraph.ingest.causal.verify import ioi_logit_difference, verify_edges
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.names import EdgeKey, parse_edge
from tests.ingest.test_planted import MARK, planted_model, planted_prompts

READOUT = 18  # the residual dimension 1.0 writes what it read at MARK into


@pytest.fixture(scope="module")
def planted():
    model = planted_model(readout=True, gain=1.5)  # attention at END not saturated
    marked = planted_prompts()
    unmarked = [
        Prompt("u" + p.id, "", tuple(0 if t == MARK else t for t in p.tokens), p.roles)
        for p in marked
    ]
    W_U = model.hooked.W_U[READOUT]
    up, down = int(W_U.argmax()), int(W_U.argmin())

    def metric(log_probs, prompts):
        return (log_probs[:, up] - log_probs[:, down]).cpu()  # at END

    return model, marked + unmarked, metric


@pytest.mark.parametrize("mode", ["global", "local"])
def test_the_planted_edge_moves_the_metric_and_its_control_does_not(planted, mode):
    model, prompts, metric = planted
    planted_edge, idle = EdgeKey("0.0", "1.0", "key"), EdgeKey("0.1", "1.0", "key")
    effects = verify_edges(
        model, prompts, [planted_edge, idle], seeds=[Seed(1, 0, "END", "MARK")], mode=mode,
        metric=metric,
    )  # fmt: skip
    real, absent = effects
    assert real.prompts == 5  # the marked prompts
    assert abs(real.effect) > 0.1 * abs(real.clean)  # a tenth of the metric, or more
    assert abs(real.control) < 1e-4 * abs(real.effect)
    assert real.difference == pytest.approx(real.effect - real.control)
    assert absent.prompts == 0  # 0.1 never writes into 1.0: nothing to ablate


def test_boosting_moves_the_metric_the_other_way(planted):
    model, prompts, metric = planted
    edge = [EdgeKey("0.0", "1.0", "key")]
    seeds = [Seed(1, 0, "END", "MARK")]
    ablated = verify_edges(model, prompts, edge, seeds=seeds, metric=metric)[0]
    boosted = verify_edges(model, prompts, edge, seeds=seeds, metric=metric, boost=True)[0]
    assert ablated.effect * boosted.effect < 0


def test_batching_does_not_change_the_effects(planted):
    model, prompts, metric = planted
    edge = [EdgeKey("0.0", "1.0", "key")]
    seeds = [Seed(1, 0, "END", "MARK")]
    whole = verify_edges(model, prompts, edge, seeds=seeds, metric=metric, batch_size=10)[0]
    # batches of 5 would hold only marked or only unmarked prompts: no mean to centre on
    halves = verify_edges(model, prompts[::2] + prompts[1::2], edge, seeds=seeds, metric=metric,
                          batch_size=5)[0]  # fmt: skip
    assert halves.prompts == whole.prompts
    assert halves.effect == pytest.approx(whole.effect, rel=0.5)


def test_tiny_ioi_traced_edges_beat_random_controls_on_held_out_prompts():
    model = load_model("tiny-ioi")
    held_out = task_prompts(model, 96, seed=11)  # tiny-ioi's prompts come from held-out families
    edges = [parse_edge(e) for e in ("pos_embed->0.2:key", "pos_embed->0.3:key", "0.0->1.3:key",
                                     "0.2->1.0:query", "0.1->1.2:key")]  # fmt: skip
    effects = verify_edges(model, held_out, edges, seeds=default_seeds(model))
    assert all(e.prompts > 10 for e in effects)
    assert sum(e.difference < 0 for e in effects) >= 4  # removing them lowers IO - S
    mean_effect = sum(abs(e.effect) for e in effects) / len(effects)
    mean_control = sum(abs(e.control) for e in effects) / len(effects)
    assert mean_effect > 4 * mean_control, [(e.edge.name, e.effect, e.control) for e in effects]


def test_edges_and_metrics_are_checked():
    assert parse_edge("L8H6 -> a9.h9 : query") == EdgeKey("8.6", "9.9", "query")
    assert parse_edge("mlp0->1.0:key") == EdgeKey("mlp0", "1.0", "key")
    assert parse_edge("8.6-9.9:query") == EdgeKey("8.6", "9.9", "query")  # no quotes needed
    assert parse_edge("1.0:qk_bias-1.0:query") == EdgeKey("1.0:qk_bias", "1.0", "query")
    with pytest.raises(ValueError, match="UPSTREAM-HEAD:SIDE"):
        parse_edge("8.6->9.9")
    with pytest.raises(ValueError, match="needs them"):
        ioi_logit_difference(torch.zeros(1, 3, 5), [Prompt("x", "", (1, 2, 3), {"END": 2})])
    model = load_model("tiny-ioi")
    with pytest.raises(ValueError, match="QK bias cannot be ablated"):
        verify_edges(model, task_prompts(model, 2), [parse_edge("1.0:qk_bias->1.0:query")],
                     seeds=default_seeds(model))  # fmt: skip


def test_an_edges_control_depends_on_the_edge_and_the_seed_alone():
    model = load_model("tiny-ioi")
    prompts, seeds = task_prompts(model, 24), default_seeds(model)
    first, second = parse_edge("0.2-1.0:query"), parse_edge("pos_embed-0.2:key")
    alone = verify_edges(model, prompts, [first], seeds=seeds, seed=7, batch_size=8)
    together = verify_edges(model, prompts, [second, first], seeds=seeds, seed=7, batch_size=8)
    assert alone[0].prompts > 0
    # The same draw whatever else is measured (equal up to float rounding: the forward
    # passes stack other rows).
    assert together[1].control == pytest.approx(alone[0].control, rel=1e-5, abs=1e-6)
    other_seed = verify_edges(model, prompts, [first], seeds=seeds, seed=8, batch_size=8)
    assert other_seed[0].control != pytest.approx(alone[0].control, rel=1e-3)


@pytest.fixture(scope="module")
def tiny_value():
    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.core.trace import pad_tokens, run_batch, trace_batch

    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 32, seed=3)
    params = TraceParams(seeding="linear")
    tokens, lengths = pad_tokens(prompts)
    acts = run_batch(model, prompts, tokens, lengths, params)
    qk = model.qk.to(model.device, model.dtype)
    traced = trace_batch(acts, qk, model.layout, prompts, (), params, directions=True)
    return model, prompts, params, acts, traced


def test_a_value_edge_is_ablated_along_its_read_direction_its_control_inside_w_v(tiny_value):
    from headgraph.ingest.causal.intervene import ablation_deltas, value_bases

    model, _, _, acts, traced = tiny_value
    W_V = model.values.W_V
    rows = (traced.edge_side == 2).nonzero().squeeze(-1)  # every value edge
    w = value_bases(traced, W_V, rows, control=False)[..., 0]
    control = value_bases(traced, W_V, rows, control=True, generator=torch.Generator())[..., 0]
    assert torch.allclose(w.norm(dim=-1), torch.ones(len(rows)), atol=1e-5)
    assert (w * control).sum(-1).abs().max() < 1e-5  # orthogonal to the read direction
    firing = traced.edge_firing[rows]
    span = W_V[traced.firings.layer[firing], traced.firings.head[firing]]  # [edge, d, d_head]
    inside = span @ torch.linalg.lstsq(span, control[..., None]).solution
    assert torch.allclose(inside[..., 0], control, atol=1e-4)  # in the head's value input
    one = rows[:1]  # a single edge: its delta lies along w and removes the centred part
    delta = ablation_deltas(traced, acts.components, (None, None), rows=one, W_V=W_V)
    b = int(traced.firings.batch[traced.edge_firing[one]])
    t, c = int(traced.edge_token[one]), int(traced.edge_component[one])
    d = delta[b, t, c]
    assert d.abs().sum() > 0 and delta.abs().sum() == d.abs().sum()
    assert torch.allclose(d, (d @ w[0]) * w[0], atol=1e-5)


def test_tiny_iois_strongest_value_edge_beats_its_control_in_the_heads_value_input():
    """embed -> 0.2:value carries the S2 name to END (path patching: 0.44 of the logit
    difference); ablated only in 0.2's value input along its read direction."""
    from headgraph.ingest.core.params import TraceParams

    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 32, seed=3)
    (effect,) = verify_edges(
        model, prompts, [EdgeKey("embed", "0.2", "value")], seeds=(),
        params=TraceParams(seeding="linear"), mode="local",
    )  # fmt: skip
    assert effect.prompts > 25
    assert effect.effect < effect.control - 1.0 and effect.difference < -5 * effect.stderr


def test_tiny_iois_inhibition_of_the_subjects_copy_beats_its_controls():
    """0.2 and 0.3 -> 1.x:inhibit keep the name movers off S1+1, where the subject was copied
    (path patching: 1.5-3% of the logit difference each). Ablated along the firing's score
    gradient there, the name movers look at the subject's copy and the logit difference
    falls, against a random direction of the key input: by a little each (one direction of
    what keeps them off), clearly together."""
    from headgraph.ingest.core.params import TraceParams

    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 64, seed=3)
    edges = [EdgeKey(up, head, "inhibit") for up in ("0.2", "0.3") for head in ("1.0", "1.3")]
    effects = verify_edges(model, prompts, edges, seeds=(), params=TraceParams(seeding="linear"))
    assert all(e.prompts > 20 for e in effects), effects
    assert sum(e.difference < 0 for e in effects) >= 3, effects
    pooled = sum(e.stderr**2 for e in effects) ** 0.5
    assert sum(e.difference for e in effects) < -3 * pooled, effects


def test_a_whole_default_trace_is_ablated_at_once_query_key_and_value_edges(tiny_value):
    from headgraph.ingest.causal.intervene import ablation_deltas

    model, _, _, acts, traced = tiny_value
    qk = model.qk.to(model.device, model.dtype)
    with pytest.raises(ValueError, match="needs the model's W_V"):
        ablation_deltas(traced, acts.components, (qk.U, qk.V))
    every = ablation_deltas(traced, acts.components, (qk.U, qk.V), W_V=model.values.W_V)
    value = (traced.edge_side == 2).nonzero().squeeze(-1)
    alone = ablation_deltas(traced, acts.components, (qk.U, qk.V), rows=value,
                            W_V=model.values.W_V)  # fmt: skip
    assert alone.abs().sum() > 0 and every.abs().sum() > alone.abs().sum()
    inhibit = (traced.edge_side == 3).nonzero().squeeze(-1)
    assert not torch.equal(  # left out unless asked for, then ablated along g at t
        every, ablation_deltas(traced, acts.components, (qk.U, qk.V), W_V=model.values.W_V,
                               rows=torch.cat([value, inhibit])),
    )  # fmt: skip
