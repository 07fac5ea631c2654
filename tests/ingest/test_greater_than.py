"""The greater-than task: GPT-2's tokenizer, years as 17 + two digits, sets of answers."""

from pathlib import Path

import pytest
import torch

from headgraph.errors import InputError
from headgraph.ingest.causal.verify import probability_difference
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.trace import pad_tokens, run_batch, trace
from headgraph.ingest.model import Architecture, HFTokenizer, build_model
from headgraph.ingest.tasks.greater_than import greater_than_prompts
from headgraph.ingest.tasks.ioi import word_tokenizer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gpt2-tokenizer"


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from transformers import GPT2Tokenizer

    return HFTokenizer(GPT2Tokenizer.from_pretrained(FIXTURE))


@pytest.fixture(scope="module")
def model(gpt2_tokenizer):
    shape = Architecture(2, 4, 64, 16, 50257, 64, 128, init_range=0.3)
    return build_model(shape, tokenizer=gpt2_tokenizer, name="random-gpt2-vocab")


def test_prompts_have_every_later_year_right_and_every_earlier_one_wrong(gpt2_tokenizer):
    prompts = greater_than_prompts(30, tokenizer=gpt2_tokenizer, seed=1)
    for p in prompts:
        yy = int(gpt2_tokenizer.decode([p.tokens[p.roles["YY"]]]))
        later = [int(gpt2_tokenizer.decode([t])) for t in p.answer_set]
        earlier = [int(gpt2_tokenizer.decode([t])) for t in p.wrong_set]
        assert later == list(range(yy + 1, 100)) and earlier == list(range(yy))
        assert gpt2_tokenizer.decode([p.tokens[-1]]) == " 17" and p.roles["END"] == 11
        assert p.answer == p.answer_set[0] and p.answers == p.answer_set


def test_a_tokenizer_without_number_tokens_is_refused():
    with pytest.raises(InputError, match="every two-digit number as one token"):
        greater_than_prompts(2, tokenizer=word_tokenizer())


def test_the_prediction_splits_into_the_mean_logit_of_later_minus_earlier_years(model):
    prompts = greater_than_prompts(8, tokenizer=model.tokenizer, seed=2)
    tokens, lengths = pad_tokens(prompts)
    acts = run_batch(model, prompts, tokens, lengths, TraceParams(seeding="linear"))
    split = acts.prediction
    with torch.no_grad():
        logits = model.hooked(tokens)[torch.arange(8), lengths - 1]
    expected = torch.stack(
        [logits[b, list(p.answer_set)].mean() - logits[b, list(p.wrong_set)].mean()
         for b, p in enumerate(prompts)]
    )  # fmt: skip
    torch.testing.assert_close(split.total + split.bias, expected, rtol=1e-4, atol=1e-4)
    mass = probability_difference(logits.log_softmax(-1), prompts)
    assert split.correct.tolist() == (mass > 0).tolist()


def test_greater_than_traces_from_the_prediction_both_ways(model):
    prompts = greater_than_prompts(8, tokenizer=model.tokenizer, seed=3)
    for seeding in ("linear", "prob"):
        batch = next(trace(model, prompts, seeds=(), params=TraceParams(seeding=seeding)))
        assert batch.prediction is not None and batch.seeded is not None


def test_verify_measures_greater_than_by_probability_difference(model, tmp_path):
    import headgraph as hg

    store = tmp_path / "db"
    done = hg.ingest(model, store=str(store), task="greater-than", n_prompts=16)
    assert done.edges > 0
    checked = hg.verify(str(store), top=2, model=model)
    assert checked.metric == "probability" and len(checked.effects) == 2
    assert all(-1.0 <= e.clean <= 1.0 for e in checked.effects)  # a difference of masses
