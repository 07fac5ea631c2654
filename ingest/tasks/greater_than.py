"""The greater-than task (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17".

The model should continue with a year above the first one: every two-digit
token ``YY'`` with ``YY' > YY`` is a right answer (``answer_set``), every one
below a wrong one (``wrong_set``), and the task's metric is the probability
mass above ``YY`` minus the mass below. It needs a tokenizer that writes a
year as ``" 17"`` then its two digits, as GPT-2's does. Roles: ``YY`` (the
first year's digits) and ``END`` (the last token, where the year is predicted).
"""

from __future__ import annotations

import random

from headgraph.errors import InputError
from headgraph.ingest.core.records import Prompt
from headgraph.ingest.model.tokenizer import Tokenizer

NOUNS = ("war", "expedition", "siege", "journey", "drought", "reign", "trial", "strike",
         "campaign", "voyage", "famine", "occupation", "dispute", "tour", "project")  # fmt: skip
TEMPLATE = "The {noun} lasted from the year 17{yy:02d} to the year 17"


def two_digit_tokens(tokenizer: Tokenizer) -> list[int]:
    """The token of each two-digit number ``00`` .. ``99``.

    Raises:
        InputError: the tokenizer does not write some of them as one token.
    """
    tokens = []
    for yy in range(100):
        try:
            ids = tokenizer.encode(f"{yy:02d}")
        except InputError:
            ids = []
        if len(ids) != 1:
            raise InputError(
                "the greater-than task needs a tokenizer that writes every two-digit number "
                f"as one token (GPT-2's does); this one splits '{yy:02d}' as {ids}"
            )
        tokens.append(ids[0])
    return tokens


def greater_than_prompts(n: int, *, tokenizer: Tokenizer, seed: int = 0) -> list[Prompt]:
    """``n`` greater-than prompts, years 1702 .. 1798, with their answer and wrong sets.

    Raises:
        InputError: the tokenizer cannot write the years as ``17`` + two digits.
    """
    digits = two_digit_tokens(tokenizer)
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        noun, yy = rng.choice(NOUNS), rng.randrange(2, 99)
        text = TEMPLATE.format(noun=noun, yy=yy)
        tokens = tuple(tokenizer.encode(text))
        if digits[yy] not in tokens:
            raise InputError(
                f"the greater-than task needs years written as 17 + two digits; this "
                f"tokenizer splits {text!r} otherwise"
            )
        roles = {"YY": tokens.index(digits[yy]), "END": len(tokens) - 1}
        later, earlier = tuple(digits[yy + 1 :]), tuple(digits[:yy])
        prompts.append(
            Prompt(
                f"greater-than-{i}",
                text,
                tokens,
                roles,
                answer=later[0],
                wrong=earlier[-1],
                answer_set=later,
                wrong_set=earlier,
            )  # fmt: skip
        )
    return prompts
