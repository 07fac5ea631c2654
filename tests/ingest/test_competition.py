"""Competition: what the readers of a firing's head stand to lose, source by source, and the
competitors, key and value shares that follow (docs/core.md, "inhibit" and "Relevance")."""

import pytest
import torch

from headgraph.ingest.core.competition import (
    Stakes,
    competitors,
    harm,
    most_attended,
)
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.sides import LayerFirings, SideReading
from headgraph.ingest.core.signals import (
    augment,
    find_firings,
    project,
    project_rotated,
    projections,
)
from headgraph.ingest.core.stakes import baseline_moves
from headgraph.ingest.core.trace import pad_tokens, trace
from headgraph.ingest.jobs.trace_job import task_prompts
from headgraph.ingest.model import load_model


def test_harm_is_what_the_readers_lose_when_one_score_moves():
    pattern = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    values = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    moves = torch.tensor([[0.0, 3.0, -1.0]], dtype=torch.float64)
    lost, out = harm(pattern, values, moves)
    assert out.item() == pytest.approx(0.7 * 2 - 0.2 + 0.05)
    scores = pattern.log()
    for t in range(3):  # recomputed: one score moved, the softmax taken again
        moved = scores.clone()
        moved[0, t] += moves[0, t]
        read = (moved.softmax(-1) * values).sum()
        assert lost[0, t].item() == pytest.approx((out - read).item())
    assert lost[0, 0] == 0  # a score that does not move costs nothing


def test_a_suppressed_source_weighs_by_what_it_would_get_not_by_its_attention():
    """Almost no attention: a gradient sees nothing there; the move to the baseline does."""
    pattern = torch.tensor([[0.95, 0.049, 0.001]])
    values = torch.tensor([[1.0, 0.9, -3.0]])
    lost, _ = harm(pattern, values, torch.tensor([[0.0, 0.5, 8.0]]))
    assert lost[0, 2] > 10 * lost[0, 1] > 0


def test_competitors_are_the_fewest_reaching_the_edge_share_never_token_zero_or_the_source():
    lost = torch.tensor([
        [9.0, 5.0, 1.0, 3.0, 0.0, 7.0],  # dest 4: token 5 is beyond it, 0 never competes
        [0.0, 4.0, 4.0, 0.0, 0.0, 0.0],  # the source (1) never competes with itself
        [0.0, -1.0, 0.0, 0.0, 0.0, 0.0],  # nothing to lose: no competitor
    ])  # fmt: skip
    stakes = Stakes(lost, torch.ones(3), torch.ones(3), torch.zeros(3), torch.ones(3))
    rows = torch.arange(3)
    firing, rival = competitors(stakes, rows, dest=torch.tensor([4, 5, 5]),
                                source=torch.tensor([2, 1, 3]), frac=0.7, most=4)  # fmt: skip
    # row 0: 5 + 3 = 8 of 9 (token 2 is its source) -> tokens 1 and 3
    assert list(zip(firing.tolist(), rival.tolist(), strict=True)) == [(0, 1), (0, 3), (1, 2)]
    few, _ = competitors(stakes, rows[:1], dest=torch.tensor([4]), source=torch.tensor([4]),
                         frac=0.7, most=1)  # fmt: skip
    assert few.tolist() == [0]


def test_a_seeds_own_share_is_handed_on_as_far_as_its_value_differs_from_the_baseline():
    """A seed's share of the prediction is measured from its value as it is; the value side
    hands on the part that differs from the baseline, and the rest of the firing's
    relevance (from its readers) by the head's output less the baseline's."""
    stakes = Stakes(
        torch.zeros(2, 3), torch.ones(2), own_value=torch.tensor([4.0, 1.0]),
        own_moved=torch.tensor([3.0, -2.0]), moved_out=torch.tensor([2.0, 4.0]),
    )  # fmt: skip
    assert stakes.seed_share().tolist() == [0.75, 0.0]  # a part opposed to v: none
    assert stakes.moved_share().tolist() == [1.0, 0.0]  # 3 / 2, at most all
    reading = SideReading(torch.tensor([0, 1, 1]), torch.tensor([1, 2, 2]), torch.zeros(3, 2),
                          share=torch.tensor([0.5, 0.5, 0.5]),
                          seed_share=torch.tensor([0.25, 0.25, 1.0]))  # fmt: skip
    relevance, seed = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0])
    assert reading.handed(relevance, seed).tolist() == [0.5 * 0.5 + 0.5 * 0.25, 0.5, 2.0]
    # what the final norm restores of a lone seed is taken from the seed's part only
    kept = torch.tensor([0.5, 0.25])
    assert reading.handed(relevance, seed, kept=kept).tolist() == [
        0.5 * 0.5 + 0.5 * 0.5 * 0.25, 2.0 * 0.25 * 0.25, 2.0 * 0.25 * 1.0,
    ]  # fmt: skip
    plain = SideReading(reading.firing, reading.token, reading.direction, reading.share)
    assert plain.handed(relevance, seed).tolist() == [0.5, 1.0, 1.0]


def test_without_stakes_the_competitor_is_the_most_attended_other_source():
    pattern = torch.tensor([[0.5, 0.1, 0.3, 0.1, 0.0], [0.6, 0.4, 0.0, 0.0, 0.0]])
    rival = most_attended(pattern, dest=torch.tensor([3, 1]), source=torch.tensor([2, 1]))
    assert rival.tolist() == [1, -1]


@pytest.mark.parametrize("name", ["tiny-ioi", "tiny-ioi-rope"])
def test_a_score_move_is_the_sparse_set_score_at_the_baseline_input(name):
    """g (turned per source in a rotary model) against the singular-vector projections of
    the input less its change, computed apart."""
    model = load_model(name)
    prompts = task_prompts(model, 2, seed=3)
    acts = model.run(*pad_tokens(prompts))
    qk = model.qk.to("cpu", torch.float64)
    layer, head, dest = 1, torch.tensor([0, 1]), prompts[0].roles["END"]
    x = augment(acts.normalized[:1].double())  # [1, layer, pos, d_model+1]
    torch.manual_seed(0)
    change = torch.randn(x.shape[2], x.shape[3] - 1, dtype=torch.float64)
    baseline = x.clone()
    baseline[0, layer, :, :-1] -= change
    if acts.rotary is None:
        proj_u, before, after = project(x, qk.U), project(x, qk.V), project(baseline, qk.V)
        rotated = None
    else:
        rotary = acts.rotary.to(torch.float64)
        proj_u = project_rotated(x, qk.query_factor, qk.query_readout, rotary)
        before = project_rotated(x, qk.key_factor, qk.key_readout, rotary)
        after = project_rotated(baseline, qk.key_factor, qk.key_readout, rotary)
        rotated = qk.key_factor[layer], qk.key_readout[layer], rotary, layer
    sparse = torch.rand(2, qk.S.shape[-1], generator=torch.Generator().manual_seed(1)) < 0.3
    weights = qk.S[layer, head] * proj_u[0, layer, head, dest] * sparse  # [2, rank]
    moves = baseline_moves(weights, change[None], torch.zeros(2, dtype=torch.long), qk,
                           layer=layer, head=head, rotated=rotated)  # fmt: skip
    expected = torch.einsum("hr,hsr->hs", weights, after[0, layer, head] - before[0, layer, head])
    torch.testing.assert_close(moves, expected, rtol=1e-6, atol=1e-8)


def test_the_score_gradient_formed_once_is_what_each_competitor_and_move_reads():
    """Without rotation a firing's score gradient g = V w is formed once a layer: the
    inhibition side reads -g at each competitor, and the score moves read g, exactly as
    when each is formed apart (per competitor, and on V's columns)."""
    from headgraph.ingest.core.contributions import SharedDirections, SignalDirections
    from headgraph.ingest.core.sides import read_side

    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 8, seed=3)
    acts = model.run(*pad_tokens(prompts))
    qk = model.qk.to("cpu", acts.normalized.dtype)
    proj_u, proj_v = projections(acts, qk)
    firings = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=TraceParams())
    layer = 1
    rows = (firings.layer == layer).nonzero().squeeze(-1)
    scale = float(acts.attn_scale[layer])
    f = LayerFirings.of(layer, rows, firings, proj_u, qk.S, attn_scale=scale,
                        key_singular_vectors=qk.V[layer])  # fmt: skip
    reading = read_side("inhibit", f, acts, qk, reader=None)
    assert isinstance(reading.direction, SharedDirections) and len(reading.firing) > 0
    apart = SignalDirections(-f.score_weights[reading.firing], qk.V[layer],
                             f.head[reading.firing], reading.token)  # fmt: skip
    torch.testing.assert_close(reading.direction.dense(), apart.dense())
    torch.manual_seed(0)
    change = torch.randn(acts.normalized[:, layer].shape)
    shared = baseline_moves(f.score_weights, change, f.batch, qk, layer=layer, head=f.head,
                            rotated=None, gradient=f.score_gradient)  # fmt: skip
    on_v = torch.einsum("bpd,hdk->bhpk", change, qk.V[layer][:, :-1])  # [batch, head, pos, rank]
    by_hand = -torch.einsum("npk,nk->np", on_v[f.batch, f.head], f.score_weights)
    torch.testing.assert_close(shared, by_hand)


@pytest.mark.parametrize("name", ["tiny-ioi", "tiny-ioi-rope"])
def test_a_score_move_is_what_the_model_scores_with_the_key_input_moved(name):
    """The firings' score weights move the softmax's input as the model does: a key input
    changed through a TransformerLens hook moves ``hook_attn_scores`` by the same amount
    (the attention scale and every singular vector counted)."""
    model = load_model(name)
    prompts = task_prompts(model, 4, seed=3)
    tokens, lengths = pad_tokens(prompts)
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", acts.normalized.dtype)
    proj_u, proj_v = projections(acts, qk)
    firings = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=TraceParams())
    layer = 1
    rows = (firings.layer == layer).nonzero().squeeze(-1)
    f = LayerFirings.of(layer, rows, firings, proj_u, qk.S,
                        attn_scale=float(acts.attn_scale[layer]))  # fmt: skip
    seeded = torch.Generator().manual_seed(0)
    change = torch.randn(acts.normalized[:, layer].shape, generator=seeded)  # [batch, pos, d_model]
    rotated = None
    if acts.rotary is not None:
        rotated = qk.key_factor[layer], qk.key_readout[layer], acts.rotary, layer
    moves = baseline_moves(f.score_weights, change, f.batch, qk, layer=layer, head=f.head,
                           rotated=rotated)  # fmt: skip

    hooked = model.hooked
    attn = hooked.blocks[layer].attn  # grouped heads: hook_k holds the key/value heads
    W_K = (attn._W_K if hasattr(attn, "_W_K") else attn.W_K).detach()  # [kv head, d_model, d_head]
    name_k, name_scores = f"blocks.{layer}.attn.hook_k", f"blocks.{layer}.attn.hook_attn_scores"
    _, clean = hooked.run_with_cache(tokens, names_filter=name_scores)
    moved_k = (name_k, lambda k, hook: k - torch.einsum("bpd,hde->bphe", change, W_K))
    with hooked.hooks(fwd_hooks=[moved_k]):
        _, moved = hooked.run_with_cache(tokens, names_filter=name_scores)
    shift = (moved[name_scores] - clean[name_scores])[f.batch, f.head, f.dest]  # [n, src]
    causal = torch.arange(shift.shape[-1]) <= f.dest[:, None]
    torch.testing.assert_close(moves[causal], shift[causal], rtol=1e-3, atol=1e-3)


def test_tiny_ioi_is_kept_off_the_subjects_copy_most_where_path_patching_says():
    """Path patching puts layer 1's inhibition at S1+1 and S1 (docs/verify.md): competitors
    by harm carry most of the inhibition's relevance there; the most attended ones did not."""
    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 64, seed=4)

    def at_the_subject(weighting: str) -> float:
        by_role: dict[str, float] = {}
        params = TraceParams(seeding="linear", weighting=weighting)
        for batch in trace(model, prompts, seeds=(), params=params):
            for e in batch.edge_records():
                if e.side == "inhibit" and e.layer == 1 and e.role is not None:
                    by_role[e.role] = by_role.get(e.role, 0.0) + e.relevance
        subject = by_role.get("S1+1", 0.0) + by_role.get("S1", 0.0)
        return subject / sum(by_role.values())

    stakes, sensitivity = at_the_subject("stakes"), at_the_subject("sensitivity")
    assert stakes > 0.6 and stakes > sensitivity + 0.1, (stakes, sensitivity)
