"""Tokenizers as headgraph sees them: text in, token ids out.

Any object with ``encode(text) -> list[int]`` and ``decode(ids) -> str`` will
do; Hugging Face tokenizers are wrapped by the model adapter. ``WordTokenizer``
is the word-level tokenizer of the models the project builds itself (random
benchmark models, the bundled toy models).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from headgraph.errors import InputError

_WORD = re.compile(r"\w+|[^\w\s]")


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class WordTokenizer:
    """Splits text into words and punctuation marks, one token each.

    Args:
        words: The vocabulary, in id order (duplicates are ignored).
    """

    def __init__(self, words: Iterable[str]):
        self.vocabulary: tuple[str, ...] = tuple(dict.fromkeys(words))
        self._ids = {word: i for i, word in enumerate(self.vocabulary)}
        bad = [w for w in self.vocabulary if _WORD.fullmatch(w) is None]
        if bad:
            raise InputError(f"vocabulary entries must be one word or one punctuation mark: {bad}")

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``.

        Raises:
            ValueError: a word is not in the vocabulary.
        """
        words = _WORD.findall(text)
        unknown = sorted({w for w in words if w not in self._ids})
        if unknown:
            raise InputError(f"words not in the vocabulary: {', '.join(unknown)}")
        return [self._ids[w] for w in words]

    def decode(self, ids: Sequence[int]) -> str:
        text = " ".join(self.vocabulary[i] for i in ids)
        return re.sub(r" ([^\w\s])", r"\1", text)


class HFTokenizer:
    """A Hugging Face tokenizer seen through the :class:`Tokenizer` protocol (no BOS)."""

    def __init__(self, tokenizer: Any):
        self.hf = tokenizer

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids))
