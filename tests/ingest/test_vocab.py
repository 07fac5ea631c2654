"""Vocabulary tokens of a singular vector: one at a time (features --model) and all at once
(stored at ingest) agree, and only tokens the tokenizer can decode are candidates."""

from headgraph.ingest.core.vocab import all_top_tokens, top_tokens
from headgraph.ingest.model import load_model


def test_one_at_a_time_and_batched_give_the_same_decodable_tokens():
    model = load_model("random:tiny")  # 512 embeddings, a word-level tokenizer of far fewer
    batched = all_top_tokens(model, n=5)
    for layer, head, index, side in [(0, 0, 0, "key"), (1, 3, 2, "query"), (1, 0, 15, "key")]:
        one = top_tokens(model, layer, head, index, side=side, n=5)
        ids = batched[f"{side}_ids"][layer, head, index].tolist()
        assert all(i < len(model.tokenizer) for i in ids)
        assert [word for word, _ in one] == [model.tokenizer.decode([i]) for i in ids]
