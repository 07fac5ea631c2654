import torch

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.signals import augment, find_firings, pair_terms, project, sparse_set
from headgraph.ingest.core.trace import pad_tokens


def test_terms_sum_to_the_models_attention_scores_for_every_head_and_pair(model, prompts):
    tokens, lengths = pad_tokens(prompts)
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", torch.float64)
    x_tilde = augment(acts.normalized.double())
    terms = pair_terms(project(x_tilde, qk.U), project(x_tilde, qk.V), qk.S)
    scores = model.attention_scores(tokens).double()  # TransformerLens: q.k, unscaled
    causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()
    summed = terms.sum(-1)[..., causal]
    torch.testing.assert_close(summed, scores[..., causal], rtol=1e-4, atol=1e-3)
    assert scores[..., causal].abs().max() > 1.0  # the check is not vacuous


def test_sparse_set_is_the_shortest_prefix_exceeding_the_score():
    terms = torch.tensor(
        [
            [5.0, -1.0, 3.0, 0.5],  # total 7.5: 5, 8 -> S = {0, 2}
            [1.0, 1.0, 1.0, 1.0],  # no negative term: every term is needed
            [-4.0, 1.0, -2.0, 0.5],  # negative total -4.5: ascending -4, -6 -> S = {0, 2}
            [9.0, 0.1, 0.1, -0.1],  # total 9.1: 9 is short, 9.1 reaches it -> S = {0, 1}
        ]
    )
    order, size, selected = sparse_set(terms, frac=1.0)
    assert size.tolist() == [2, 4, 2, 2]
    assert order[0, :2].tolist() == [0, 2] and order[2, :2].tolist() == [0, 2]
    assert selected.tolist()[0] == [True, False, True, False]
    assert selected.sum(-1).tolist() == size.tolist()


def test_sparse_set_with_a_smaller_fraction_keeps_fewer_vectors():
    terms = torch.tensor([[5.0, 3.0, 1.0, 1.0]])
    assert sparse_set(terms, frac=0.5)[1].tolist() == [1]  # 5 > 0.5 * 10
    assert sparse_set(terms, frac=0.7)[1].tolist() == [2]


def test_sparse_sets_past_the_partial_sort_and_with_ties_equal_a_whole_stable_sort():
    """Sets larger than the terms sorted first, and rows whose strongest terms tie, come out
    as a whole stable sort gives them: S, its order, and the selection."""
    from headgraph.ingest.core.signals import PARTIAL_RANK

    torch.manual_seed(0)
    terms = torch.randn(400, 64) * torch.rand(400, 1) ** 4  # some spread, some peaked
    terms[::7] = torch.rand(len(terms[::7]), 64)  # all positive, flat: S is large
    terms[1::5, 3] = terms[1::5, 10]  # ties, some among the strongest
    terms[2::9] = terms[2::9].round()  # many ties
    for frac in (0.5, 0.7, 1.0):
        order, size, selected = sparse_set(terms, frac=frac)
        total = terms.sum(-1, keepdim=True)
        sign = torch.where(total < 0, -1.0, 1.0)
        ordered, expected_order = (terms * sign).sort(dim=-1, descending=True, stable=True)
        slack = 1e-6 * terms.abs().sum(-1, keepdim=True)
        reached = ordered.cumsum(-1) >= frac * total * sign - slack
        expected = torch.where(reached.any(-1), reached.int().argmax(-1) + 1, 64)
        assert size.tolist() == expected.tolist()
        assert (size > PARTIAL_RANK).any()  # the whole sort's path is taken
        for row in range(len(terms)):
            n = int(size[row])
            assert order[row, :n].tolist() == expected_order[row, :n].tolist()
            assert selected[row].nonzero().squeeze(-1).tolist() == sorted(order[row, :n].tolist())


def test_firings_respect_threshold_source_zero_and_padding(projected):
    acts, qk, proj_u, proj_v = projected
    n_pos = acts.pattern.shape[-1]
    params = TraceParams(attention_threshold=0.5)
    f = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=params)
    assert len(f) > 20
    assert (f.attention >= 0.5).all() and (f.score >= 0).all() and (f.source > 0).all()
    assert (f.dest < acts.lengths[f.batch]).all() and (f.source <= f.dest).all()
    torch.testing.assert_close(f.score, f.terms.sum(-1))
    # Every pair that meets the rule is found: count them independently.
    terms = pair_terms(proj_u, proj_v, qk.S).sum(-1)
    real = torch.arange(n_pos) < acts.lengths[:, None]
    rule = (acts.pattern >= 0.5) & (terms >= 0) & real[:, None, None, :, None]
    rule[..., 0] = False
    assert int(rule.sum()) == len(f)
    lower = find_firings(
        acts.pattern,
        proj_u,
        proj_v,
        qk.S,
        acts.lengths,
        params=TraceParams(attention_threshold=0.3),
    )
    assert len(lower) > len(f)
