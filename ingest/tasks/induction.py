"""The induction task: a random sequence of words, then its start again.

``w1 .. wL w1 .. wk``: at the last token (the second ``wk``) a model that has
learned induction predicts ``w(k+1)``, the word that followed the first ``wk``.
Roles: ``A`` (the first ``wk``), ``B`` (the first ``w(k+1)``, the answer's first
occurrence), ``A2`` and ``END`` (the last token, where the answer is predicted).
The answer is ``w(k+1)``; there is no wrong answer (its logit alone). Works
with any tokenizer: the words are the tokenizer's own single-token words.
"""

from __future__ import annotations

import random
import re

from headgraph.errors import InputError
from headgraph.ingest.core.records import Prompt
from headgraph.ingest.model.tokenizer import Tokenizer

_WORDLIKE = re.compile(r"[A-Za-z]{2,}")


def word_tokens(tokenizer: Tokenizer, *, limit: int = 20_000) -> list[int]:
    """Token ids that are a whole word with its leading space (`` Mary``), in id order."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else limit  # type: ignore[arg-type]
    out = []
    for token in range(min(size, limit)):
        word = tokenizer.decode([token]).strip()
        if _WORDLIKE.fullmatch(word):
            try:
                if tokenizer.encode(" " + word) == [token]:
                    out.append(token)
            except InputError:
                continue
    return out


def induction_prompts(
    n: int, *, tokenizer: Tokenizer, seed: int = 0, length: int = 8
) -> list[Prompt]:
    """``n`` induction prompts of ``length`` random words, repeated up to a random point.

    Raises:
        InputError: the tokenizer has fewer than ``2 * length`` single-token words.
    """
    pool = word_tokens(tokenizer)
    if len(pool) < 2 * length:
        raise InputError(
            f"the induction task needs at least {2 * length} single-token words; "
            f"this tokenizer has {len(pool)}"
        )
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        words = rng.sample(pool, length)
        k = rng.randrange(1, length - 1)  # repeat w1..wk (k >= 2 tokens), predict w(k+1)
        tokens = (*words, *words[: k + 1])
        roles = {"A": k, "B": k + 1, "A2": len(tokens) - 1, "END": len(tokens) - 1}
        text = tokenizer.decode(list(tokens))
        prompts.append(Prompt(f"induction-{i}", text, tokens, roles, answer=words[k + 1]))
    return prompts
