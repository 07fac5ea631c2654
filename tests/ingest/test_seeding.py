"""Seeds from the prediction: the cutoff rule, prompts-file answers, seed firings."""

from __future__ import annotations

import json

import pytest
import torch

from headgraph.errors import InputError
from headgraph.ingest.core.params import TraceParams, choose_seeding
from headgraph.ingest.core.seeding import PredictionSplit, linear_seeds
from headgraph.ingest.tasks.ioi import word_tokenizer
from headgraph.ingest.tasks.prompts_file import PromptsFileError, read_prompts


def split(heads: list[float], others: list[float]) -> PredictionSplit:
    """One prompt, one layer of len(heads) heads with one source each, then other components."""
    h = torch.tensor(heads).reshape(1, 1, -1, 1)
    components = torch.tensor([[*heads, *others]])
    return PredictionSplit(torch.tensor([3]), h, components, torch.zeros(1), torch.tensor([True]))


def head_columns(n_heads: int, n_others: int) -> torch.Tensor:
    return torch.tensor([True] * n_heads + [False] * n_others)


def test_the_cutoff_is_where_the_running_sum_first_exceeds_the_total():
    # total 10: sorted 6, 3, 2, 1, -2 -> running 6, 9, 11: cutoff 2 (an MLP); min(2, 5) = 2
    seeds = linear_seeds(split([6.0, 1.0, 3.0], [2.0, -2.0]), head_columns=head_columns(3, 2))
    assert seeds.head.tolist() == [0, 2] and seeds.weight.tolist() == [6.0, 3.0]
    assert seeds.share.tolist() == pytest.approx([0.6, 0.3])


def test_a_high_cutoff_is_lowered_to_half_the_total():
    # total 8: sorted 9, 1, -2 -> running 9 exceeds 8 at once: cutoff 9, lowered to 4
    seeds = linear_seeds(split([9.0, 1.0, -2.0], []), head_columns=head_columns(3, 0))
    assert seeds.head.tolist() == [0]
    seeds = linear_seeds(split([5.0, 4.5, -2.0], []), head_columns=head_columns(3, 0), frac=0.5)
    assert seeds.head.tolist() == [0, 1]  # cutoff 5 lowered to 3.75 keeps 4.5 too


def test_a_prediction_from_the_bias_alone_gives_no_seeds():
    seeds = linear_seeds(split([1.0, -3.0], [0.5]), head_columns=head_columns(2, 1))
    assert len(seeds) == 0


def test_seeding_defaults_to_the_prediction_when_every_prompt_has_an_answer(tmp_path):
    tokenizer = word_tokenizer()
    file = tmp_path / "p.jsonl"
    line = {"id": "a", "text": "When Mary and John went to the store, John gave a drink to",
            "roles": {"END": 13}, "answer": " Mary", "wrong": " John"}  # fmt: skip
    file.write_text(json.dumps(line) + "\n" + json.dumps({**line, "id": "b", "answer": 7}))
    prompts = read_prompts(file, tokenizer)
    assert prompts[0].answer == tokenizer.encode(" Mary")[0] and prompts[1].answer == 7
    assert choose_seeding(None, prompts, given=False) == "linear"
    assert choose_seeding(None, prompts, given=True) == "heads"
    with pytest.raises(InputError, match="not both"):
        choose_seeding("linear", prompts, given=True)
    bare = [p for p in read_prompts(file, tokenizer)]
    bare[0] = type(bare[0])(bare[0].id, bare[0].text, bare[0].tokens, bare[0].roles)
    assert choose_seeding(None, bare, given=False) == "heads"
    with pytest.raises(InputError, match="prompt 'a' has no answer"):
        choose_seeding("linear", bare, given=False)


def test_an_answer_of_several_tokens_names_the_line_and_the_split(tmp_path):
    file = tmp_path / "p.jsonl"
    line = {"id": "a", "text": "When Mary and John went to the store", "roles": {},
            "answer": " Mary John"}  # fmt: skip
    file.write_text("\n" + json.dumps(line) + "\n")
    with pytest.raises(PromptsFileError, match=r"line 2: answer ' Mary John' is 2 tokens"):
        read_prompts(file, word_tokenizer())
    file.write_text(json.dumps({**line, "answer": " Mary", "wrong": -1}))
    with pytest.raises(PromptsFileError, match="wrong token id -1 is negative"):
        read_prompts(file, word_tokenizer())


def test_seeds_are_traced_from_their_firing_even_below_the_threshold_or_with_a_negative_score():
    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tiny_ioi import prompts

    model = load_model("tiny-ioi")
    batch = next(trace(model, prompts(16, seed=1, held_out=True), seeds=(),
                       params=TraceParams(seeding="linear")))  # fmt: skip
    seeded, f = batch.seeded, batch.firings
    assert seeded is not None and len(seeded) >= 16
    dest = batch.prediction.dest[seeded.batch]
    rows = [
        ((f.batch == b) & (f.layer == l) & (f.head == h) & (f.dest == d) & (f.source == s))
        .nonzero()
        .flatten()
        for b, l, h, d, s in zip(
            seeded.batch, seeded.layer, seeded.head, dest, seeded.source, strict=True
        )
    ]
    found = [r for r in rows if len(r)]
    at_zero = int((seeded.source == 0).sum())  # token 0 never fires: those start at the site
    assert len(found) == len(rows) - at_zero
    assert all(bool(batch.traced[r[0]]) for r in found)
    assert any(float(f.attention[r[0]]) < 0.5 for r in found)  # taken below the threshold
    # and whatever the sign of their score: a seed moved what the answer needs from there
    negative = [r[0] for r in found if float(f.score[r[0]]) < 0]
    handed = [batch.edge_relevance[batch.edge_firing == r].sum() for r in negative]
    assert negative and all(h > 0 for h in handed)
    roles = {
        batch.prompts[b].role_at(s)
        for b, l, s in zip(
            *(t.tolist() for t in (seeded.batch, seeded.layer, seeded.source)), strict=True
        )
        if l == 1
    }
    assert "IO+1" in roles  # the name movers, found without naming them
