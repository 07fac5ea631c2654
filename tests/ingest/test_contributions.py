import pytest
import torch

from headgraph.ingest.core.contributions import (
    read_tokens,
    select_edges,
    signal_directions,
    signal_weights,
)
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.signals import find_firings


def test_contributions_plus_bias_node_sum_exactly_to_the_signal_on_both_sides(model, projected):
    acts, qk, proj_u, proj_v = projected
    f = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=TraceParams())
    checked = 0
    for layer in range(model.n_layers):
        rows = (f.layer == layer).nonzero().squeeze(-1)
        b, h, d, s = f.batch[rows], f.head[rows], f.dest[rows], f.source[rows]
        sigma = qk.S[layer, h]
        at_dest = proj_u[b, layer, h, d]
        weights = signal_weights(at_dest, f.selected[rows], sigma)
        for vectors, token, proj in ((qk.U, d, at_dest), (qk.V, s, proj_v[b, layer, h, s])):
            direction = signal_directions(weights, vectors[layer], head=h, token=token)
            reads = read_tokens(
                acts.components,
                acts.scale[:, layer],
                [direction],
                batch=b,
                token=token,
                n_upstream=model.layout.n_upstream(layer),
            )
            upstream, bias = reads.upstream, reads.bias
            # sum_{k in S} eps_k sqrt(sigma_k) (x~ . u_k), from the attention input itself
            signal = (weights * proj).sum(-1)
            torch.testing.assert_close(upstream.sum(-1) + bias, signal, rtol=1e-4, atol=1e-4)
            checked += len(rows)
    assert checked > 40


def test_query_side_signal_is_positive_on_s():
    # eps_k makes every query-side projection positive: the signal is a sum of |.|.
    proj_u = torch.tensor([[-2.0, 3.0, 0.5]])
    selected = torch.tensor([[True, True, False]])
    sigma = torch.tensor([[4.0, 1.0, 9.0]])
    weights = signal_weights(proj_u, selected, sigma)
    assert weights.tolist() == [[-2.0, 1.0, 0.0]]
    assert float((weights * proj_u).sum()) == 2 * 2.0 + 1 * 3.0


def test_edges_are_the_fewest_components_reaching_the_share_of_the_positive_total():
    contributions = torch.tensor(
        [
            [0.1, 0.5, -0.2, 0.3, 0.1],  # positive total 1.0: 0.5, 0.8 >= 0.7 -> {1, 3}
            [0.0, -1.0, 0.0, 0.0, 0.0],  # nothing positive: no edge
            [0.7, 0.0, 0.0, 0.0, 0.3],  # 0.7 reaches 0.7 exactly -> {0}
            [0.2, 0.2, 0.2, 0.2, 0.2],  # ties: 4 of 5
        ]
    )
    kept = select_edges(contributions, frac=0.7)
    assert kept.tolist()[0] == [False, True, False, True, False]
    assert kept.sum(-1).tolist() == [2, 0, 1, 4]
    assert select_edges(contributions, frac=1.0).sum(-1).tolist() == [4, 0, 2, 5]


@pytest.mark.parametrize("rule", ["positive", "signed"])
def test_edges_settled_among_the_strongest_equal_those_of_a_whole_sort(rule):
    # whole numbers: every sum is exact, and ties are common
    generator = torch.Generator().manual_seed(0)
    for width in (1, 3, 16, 17, 40, 150):
        contributions = torch.randint(-3, 5, (400, width), generator=generator).double()
        contributions[:100] = torch.randint(0, 2, (100, width), generator=generator)  # flat rows
        kept = select_edges(contributions, frac=0.7, rule=rule)
        for row, got in zip(contributions.tolist(), kept.tolist(), strict=True):
            total = sum(row) if rule == "signed" else sum(max(c, 0) for c in row)
            want, running = [False] * width, 0.0
            if total > 0 or rule == "positive":
                for c in sorted(range(width), key=lambda c: (-row[c], c)):  # ties: in order
                    if running >= 0.7 * total * (1 - 1e-6) or row[c] <= 0:
                        break
                    want[c], running = True, running + row[c]
                if rule == "signed" and running < 0.7 * total * (1 - 1e-6):
                    want = [False] * width  # the signed total is never reached
            assert got == want, (width, row)


def test_sides_read_in_blocks_held_as_weights_or_tables_give_the_same_contributions():
    from headgraph.ingest.core.contributions import SignalDirections

    torch.manual_seed(3)
    n_batch, n_pos, n_comp, d_model, n_heads, rank = 3, 5, 6, 8, 2, 4
    components = torch.randn(n_batch, n_pos, n_comp, d_model, dtype=torch.float64)
    scale = torch.rand(n_batch, n_pos, dtype=torch.float64) + 0.5
    vectors = torch.randn(n_heads, d_model + 1, rank, dtype=torch.float64)
    m = 17
    weights = torch.randn(m, rank, dtype=torch.float64)
    head, batch, token = (torch.randint(0, k, (m,)) for k in (n_heads, n_batch, n_pos))
    lazy = SignalDirections(weights[:10], vectors, head[:10], token[:10])
    table = signal_directions(weights[10:], vectors, head=head[10:], token=token[10:])
    ln_weight, ln_bias = (torch.randn(d_model, dtype=torch.float64) for _ in range(2))
    options = dict(batch=batch, token=token, n_upstream=5, ln_weight=ln_weight, ln_bias=ln_bias)
    reads = read_tokens(components, scale, [lazy, table], **options)
    dense = torch.cat([lazy.dense(), table])  # [m, d_model+1]
    whole = read_tokens(components, scale, [dense], **options)  # one table
    upstream, bias = whole.upstream, whole.bias
    torch.testing.assert_close(reads.upstream, upstream)
    torch.testing.assert_close(reads.bias, bias)
    # each side's own direction through the norm's weight, by hand
    torch.testing.assert_close(reads.direction[reads.row], dense[:, :-1] * ln_weight)
    by_hand = (components[batch, token, :5] * (dense[:, None, :-1] * ln_weight)).sum(-1)
    torch.testing.assert_close(upstream, by_hand / scale[batch, token, None])
    torch.testing.assert_close(bias, dense[:, -1] + dense[:, :-1] @ ln_bias)
    where = batch * n_pos + token  # the directions' rows are grouped by token
    assert (where[reads.row.argsort()].diff() >= 0).all()


def test_a_direction_formed_once_is_written_at_every_token_it_is_read():
    """A firing's direction read at several tokens (its competitors) is formed once and
    written to each of their rows, as if each were formed alone; no other row is touched."""
    from headgraph.ingest.core.contributions import SharedDirections, SignalDirections
    from headgraph.ingest.core.scratch import Scratch

    torch.manual_seed(4)
    n_heads, d_model, rank, m = 3, 8, 4, 12
    vectors = torch.randn(n_heads, d_model + 1, rank, dtype=torch.float64)
    firing = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6])
    per_firing = torch.randn(7, rank, dtype=torch.float64), torch.randint(0, n_heads, (7,))
    formed = signal_directions(per_firing[0], vectors, head=per_firing[1])  # [7, d_model+1]
    shared = SharedDirections(formed, firing)
    alone = SignalDirections(per_firing[0][firing], vectors, per_firing[1][firing]).dense()
    torch.testing.assert_close(shared.dense(), alone)
    out = torch.full((m + 3, d_model), float("nan"), dtype=torch.float64)
    at = torch.randperm(m + 3)[:m]
    last = shared.write(out, at)
    torch.testing.assert_close(out[at], alone[:, :-1])
    torch.testing.assert_close(last, alone[:, -1])
    untouched = torch.ones(m + 3, dtype=torch.bool)
    untouched[at] = False
    assert out[untouched].isnan().all()
    # gathered in reused memory, the same; what one write returns outlives the next write
    scratch, again = Scratch(), torch.zeros_like(out)
    last = shared.write(again, at, scratch=scratch)
    SharedDirections(-formed, firing.flip(0)).write(torch.zeros_like(out), at, scratch=scratch)
    torch.testing.assert_close(again[at], alone[:, :-1])
    torch.testing.assert_close(last, alone[:, -1])


@pytest.mark.parametrize("kept", [1, 2, 4], ids=["sparse-set", "half", "every-vector"])
def test_a_direction_is_its_weighted_singular_vectors_however_few_are_weighted(kept):
    """Sparse weights (a sparse set's few singular vectors) are summed vector by vector,
    dense ones by one product per head: both give ``sum_k w_k u_k`` of the row's head."""
    from headgraph.ingest.core.contributions import SignalDirections

    torch.manual_seed(5)
    n_heads, d_model, rank, m = 3, 8, 4, 11
    vectors = torch.randn(n_heads, d_model + 1, rank, dtype=torch.float64)
    weights = torch.randn(m, rank, dtype=torch.float64)
    weights[torch.rand(m, rank).argsort(-1) >= kept] = 0.0  # ``kept`` weighted per row
    weights[3] = 0.0  # a row with none: the zero direction
    head, token = torch.randint(0, n_heads, (m,)), torch.randint(0, 5, (m,))
    direction = SignalDirections(weights, vectors, head, token).dense()
    by_hand = torch.einsum("mk,mdk->md", weights, vectors[head])
    torch.testing.assert_close(direction, by_hand)
    assert (direction[3] == 0).all()
