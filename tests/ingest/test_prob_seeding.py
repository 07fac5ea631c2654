"""Probability-aware seeding (ACC++): integrated gradients, then greedy exact removal."""

import pytest
import torch

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.prob_seeding import (
    Readout,
    integrated_gradients,
    objective,
    prob_seeds,
    support_mask,
)
from headgraph.ingest.core.trace import pad_tokens, run_batch, trace
from headgraph.ingest.model import load_model
from headgraph.ingest.tiny_ioi import prompts


def toy() -> tuple[Readout, torch.Tensor]:
    """One prompt, one layer of three heads with one source each, one MLP; vocab 3.

    Unit i writes along e_i; W_U sends e_0 and e_1 to the answer (token 0), e_2 away.
    """
    heads = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]]).reshape(1, 1, 3, 1, 2).double()
    others = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.5, 0.0]]]).double()
    unembed = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).double()
    support = torch.tensor([[True, False, False]])
    return Readout(heads, others, unembed, torch.zeros(3).double()), support


def test_attributions_add_up_to_the_completeness():
    readout, support = toy()
    residual = readout.heads.sum((1, 2, 3)) + readout.others.sum(1)
    c = objective(readout.logits(residual), support) - objective(readout.bias[None], support)
    g = integrated_gradients(readout, support, steps=256)
    total = torch.einsum("blhsm,bm->b", readout.heads, g) + torch.einsum(
        "bcm,bm->b", readout.others, g
    )
    torch.testing.assert_close(total, c, rtol=1e-4, atol=1e-4)


def test_greedy_removal_stops_once_tau_of_the_completeness_is_gone():
    readout, support = toy()
    columns = torch.tensor([True, True, True, False])
    result = prob_seeds(readout, support, head_columns=columns, tau=0.3, steps=128)
    # J goes from -0.001 to log(1/3) with nothing; without 0.0 alone it is -0.35: 32% gone
    assert result.seeds.head.tolist() == [0]
    assert result.heads[0, 0, 2, 0] < 0  # the head pushing away is never a seed
    everything = prob_seeds(readout, support, head_columns=columns, tau=1.0, steps=128)
    assert sorted(everything.seeds.head.tolist()) == [0, 1]  # then the MLP; 0.2's IG < 0: stop
    assert everything.components[0, 3] > 0  # the MLP was removed too, but is not a seed


def test_support_from_answers_top_k_or_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    answers = torch.tensor([[2, -1]])
    assert support_mask(logits, answers).tolist() == [[False, False, True, False]]
    assert support_mask(logits, answers, top_k=2).tolist() == [[True, True, False, False]]
    assert support_mask(logits, answers, top_p=0.8).tolist() == [[True, True, False, False]]


@pytest.mark.parametrize("name", ["tiny-ioi", "tiny-ioi-rope"])
def test_on_a_trained_model_the_seeds_remove_tau_of_the_answers_probability(name):
    model = load_model(name)
    batch = prompts(16, seed=2, held_out=True)
    params = TraceParams(seeding="prob")
    acts = run_batch(model, batch, *pad_tokens(batch), params)
    readout = acts.readout
    residual = readout.heads.sum((1, 2, 3)) + readout.others.sum(1)
    with torch.no_grad():
        tokens, lengths = pad_tokens(batch)
        expected = model.hooked(tokens)[torch.arange(16), lengths - 1]
    torch.testing.assert_close(readout.logits(residual), expected, rtol=1e-4, atol=1e-4)
    traced = next(trace(model, batch, seeds=(), params=params, batch_size=16))
    split, seeds = traced.prediction, traced.seeded
    assert split is not None and seeds is not None and split.measure == "log-probability"
    clean = split.total + split.bias  # baseline plus the attributions: about the clean J
    assert float(clean.max()) < 1e-3 and float((clean - split.bias).min()) > 0.0
    for b in range(16):  # every confident prompt has seeds, each with a positive attribution
        mine = seeds.batch == b
        assert mine.any() and bool((seeds.weight[mine] > 0).all())
    assert split.correct.float().mean() > 0.9
