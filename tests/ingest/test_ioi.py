import pytest

from headgraph.ingest.tasks.ioi import TEMPLATES, corrupt, ioi_prompts, word_tokenizer


class CharTokenizer:
    """A real character-level tokenizer: every name is several tokens for it."""

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


def test_roles_point_at_the_names_for_every_template_and_order(tokenizer):
    prompts = ioi_prompts(300, tokenizer=tokenizer, seed=0)
    assert {p.template for p in prompts} == set(range(len(TEMPLATES)))
    assert {p.order for p in prompts} == {"ABBA", "BABA"}
    for p in prompts:
        r, t = p.roles, p.tokens
        assert t[r["IO"]] == p.io_token and t[r["S1"]] == p.s_token and t[r["S2"]] == p.s_token
        assert p.io_token != p.s_token
        assert (
            r["S1+1"] == r["S1"] + 1 and r["END"] == len(t) - 1 and r["S2"] > max(r["IO"], r["S1"])
        )
        assert (r["S1"] < r["IO"]) == (p.order == "BABA")
        assert tokenizer.decode(t).endswith(" to")


def test_generation_is_deterministic_and_orders_can_be_fixed(tokenizer):
    assert ioi_prompts(20, tokenizer=tokenizer, seed=4) == ioi_prompts(
        20, tokenizer=tokenizer, seed=4
    )
    assert ioi_prompts(20, tokenizer=tokenizer, seed=4) != ioi_prompts(
        20, tokenizer=tokenizer, seed=5
    )
    assert {p.order for p in ioi_prompts(30, tokenizer=tokenizer, order="ABBA")} == {"ABBA"}


def test_mixed_order_is_balanced(tokenizer):
    prompts = ioi_prompts(400, tokenizer=tokenizer, seed=1)
    assert 150 < sum(p.order == "BABA" for p in prompts) < 250


def test_abc_corruption_uses_three_distinct_names_and_keeps_the_rest(tokenizer):
    clean = ioi_prompts(50, tokenizer=tokenizer, seed=2)
    for c, p in zip(corrupt(clean, tokenizer=tokenizer), clean, strict=True):
        names = {c.tokens[c.roles[r]] for r in ("S1", "IO", "S2")}
        assert len(names) == 3
        moved = {i for i, (a, b) in enumerate(zip(c.tokens, p.tokens, strict=True)) if a != b}
        assert moved <= {p.roles[r] for r in ("S1", "IO", "S2")}
        assert c.roles == p.roles and c.id == p.id + "-abc"


def test_names_that_are_not_one_token_are_refused_by_name():
    with pytest.raises(ValueError, match="not: Alice, Bob"):
        ioi_prompts(2, tokenizer=CharTokenizer(), names=["Alice", "Bob", "X"])
    with pytest.raises(ValueError, match="at least 3 distinct names"):
        ioi_prompts(2, tokenizer=word_tokenizer(), names=["Mary", "John", "Mary"])
    with pytest.raises(ValueError, match="order must be"):
        ioi_prompts(2, tokenizer=word_tokenizer(), order="AABB")
