"""The induction task, for any tokenizer, and the answer metric that verify uses for it."""

from pathlib import Path

import pytest
import torch

from headgraph.errors import InputError
from headgraph.ingest.causal.verify import answer_metric
from headgraph.ingest.model.tokenizer import WordTokenizer
from headgraph.ingest.tasks.induction import induction_prompts
from headgraph.ingest.tasks.ioi import word_tokenizer

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gpt2-tokenizer"


@pytest.mark.parametrize("which", ["words", "gpt2"])
def test_the_answer_is_the_word_that_followed_the_first_occurrence(which):
    if which == "gpt2":
        from transformers import GPT2Tokenizer

        from headgraph.ingest.model import HFTokenizer

        tokenizer = HFTokenizer(GPT2Tokenizer.from_pretrained(FIXTURE))
    else:
        tokenizer = word_tokenizer()
    prompts = induction_prompts(20, tokenizer=tokenizer, seed=3, length=8)
    for p in prompts:
        a, b, end = p.roles["A"], p.roles["B"], p.roles["END"]
        assert p.tokens[a] == p.tokens[end] and p.tokens[b] == p.answer and b == a + 1
        assert p.tokens[: end - 8 + 1] == p.tokens[8:]  # the start, repeated
        assert len(set(p.tokens[:8])) == 8 and p.wrong is None
        assert all(len(tokenizer.encode(tokenizer.decode([t]))) == 1 for t in p.tokens)
    assert len({p.tokens for p in prompts}) == 20
    assert induction_prompts(3, tokenizer=tokenizer, seed=3) == prompts[:3]  # seeded


def test_a_tokenizer_with_too_few_words_is_refused():
    with pytest.raises(InputError, match="needs at least 16 single-token words"):
        induction_prompts(1, tokenizer=WordTokenizer(["a", "b", "c"]), length=8)


def test_the_answer_metric_is_a_logit_difference_or_the_answers_log_prob():
    prompts = induction_prompts(2, tokenizer=word_tokenizer(), seed=0)
    log_probs = torch.log_softmax(torch.randn(2, len(word_tokenizer())), -1)
    rows = torch.arange(2)
    answers = torch.tensor([p.answer for p in prompts])
    torch.testing.assert_close(answer_metric(log_probs, prompts), log_probs[rows, answers])
    with_wrong = [type(p)(p.id, p.text, p.tokens, p.roles, p.answer, 5) for p in prompts]
    expected = log_probs[rows, answers] - log_probs[:, 5]
    torch.testing.assert_close(answer_metric(log_probs, with_wrong), expected)
