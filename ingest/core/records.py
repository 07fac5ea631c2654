"""Typed records: prompts, seeds, parameters, firings and edges.

Names follow the paper: a head *fires* on a token pair (destination, source)
when it attends strongly from the destination to the source; the *signal* of a
firing is carried by a few *singular vectors* of the head's augmented QK
matrix; an *edge* says that an upstream component writes that signal, on the
*query side* (at the destination token) or the *key side* (at the source).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from headgraph.errors import InputError
from headgraph.ingest.core.components import Component
from headgraph.names import parse_head

Side = Literal["query", "key", "value", "inhibit"]


@dataclass(frozen=True)
class Prompt:
    """A tokenised prompt with named token positions.

    Attributes:
        id: Stable identifier, unique within a run.
        text: The prompt text.
        tokens: Token ids as the model's tokenizer splits ``text`` (no BOS).
        roles: Role name -> token index, e.g. ``{"IO": 3, "S1": 1, "END": 13}``.
        answer: The token the model should predict after the last one, or None.
        wrong: The competing token (IOI: the subject), or None: the prediction is then
            the answer's logit alone.
        answer_set, wrong_set: Several right (wrong) tokens instead, e.g. greater-than's
            later (earlier) years; ``answer`` is then one of them, for display.
    """

    id: str
    text: str
    tokens: tuple[int, ...]
    roles: Mapping[str, int] = field(default_factory=dict)
    answer: int | None = None
    wrong: int | None = None
    answer_set: tuple[int, ...] = ()
    wrong_set: tuple[int, ...] = ()

    @property
    def answers(self) -> tuple[int, ...]:
        """The right tokens: ``answer_set``, else ``answer`` (empty when none)."""
        return self.answer_set or (() if self.answer is None else (self.answer,))

    @property
    def wrongs(self) -> tuple[int, ...]:
        """The competing tokens: ``wrong_set``, else ``wrong`` (empty when none)."""
        return self.wrong_set or (() if self.wrong is None else (self.wrong,))

    def __post_init__(self) -> None:
        if not self.tokens:
            raise InputError(f"prompt {self.id!r} has no tokens")
        for role, pos in self.roles.items():
            if not 0 <= pos < len(self.tokens):
                raise InputError(
                    f"prompt {self.id!r}: role {role} is at token {pos}, but the prompt has "
                    f"{len(self.tokens)} tokens (indices 0..{len(self.tokens) - 1})"
                )

    @cached_property
    def _role_of(self) -> dict[int, str]:
        return {pos: role for role, pos in reversed(list(self.roles.items()))}

    def role_at(self, position: int) -> str | None:
        """The role name of a token position (the first listed if several), or None."""
        return self._role_of.get(position)


@dataclass(frozen=True)
class Seed:
    """Where tracing starts: firings of one head between two roles.

    Attributes:
        layer, head: The seed head.
        dest_role: Role of the destination token (e.g. ``END``).
        source_role: Role of the source token (e.g. ``IO``), or None for any source.
    """

    layer: int
    head: int
    dest_role: str
    source_role: str | None = None

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.head} {self.dest_role}->{self.source_role or '*'}"

    @classmethod
    def from_name(cls, name: str) -> Seed:
        """The seed a run recorded as ``9.9 END->IO`` (``*``: any source)."""
        head, _, roles = name.partition(" ")
        dest, arrow, source = roles.partition("->")
        if not arrow or not dest:
            raise InputError(f"seed {name!r}: expected LAYER.HEAD DEST->SOURCE, e.g. 9.9 END->IO")
        return cls(*parse_head(head), dest, None if source in ("", "*") else source)


def parse_seeds(heads: str, roles: str, *, n_heads: int) -> tuple[Seed, ...]:
    """Parse ``--seeds 9.6,9.9,10.0 --seed-roles END:IO`` into seeds.

    ``L.*`` stands for every head of layer L; a source role ``*`` means any source.

    Raises:
        ValueError: a head or the role pair is malformed.
    """
    dest, sep, source = roles.partition(":")
    if not sep or not dest:
        raise InputError(f"seed roles {roles!r} must be DEST:SOURCE, e.g. END:IO (or END:*)")
    source_role = None if source in ("", "*") else source
    seeds: list[Seed] = []
    for item in filter(None, (part.strip() for part in heads.split(","))):
        if item.endswith(".*"):
            layer = item[:-2]
            if not layer.isdigit():
                raise InputError(f"{item!r} is not a layer wildcard: write it as LAYER.*, e.g. 9.*")
            seeds.extend(Seed(int(layer), h, dest, source_role) for h in range(n_heads))
        else:
            seeds.append(Seed(*parse_head(item), dest, source_role))
    if not seeds:
        raise InputError("no seed heads given: pass heads such as 9.6,9.9,10.0")
    return tuple(seeds)


@dataclass(frozen=True)
class Firing:
    """A head attending strongly from a destination token to a source token.

    Attributes:
        prompt_id: The prompt it happened in.
        layer, head: The head.
        dest, source: Token positions (query side, key side).
        dest_role, source_role: Their roles, or None.
        attention: The attention weight (softmax output).
        score: The unscaled attention score ``a(d, s)`` (before ``1/sqrt(d_head)``).
        singular_vectors: The sparse set S, strongest term first.
        terms: The terms ``t_k`` of those singular vectors, same order.
        traced: Whether tracing from the seeds reached this firing (edges exist
            only for traced firings).
    """

    prompt_id: str
    layer: int
    head: int
    dest: int
    source: int
    dest_role: str | None
    source_role: str | None
    attention: float
    score: float
    singular_vectors: tuple[int, ...]
    terms: tuple[float, ...]
    traced: bool

    @property
    def head_name(self) -> str:
        return f"{self.layer}.{self.head}"


@dataclass(frozen=True)
class Edge:
    """An upstream component carrying a firing's signal on one side.

    Attributes:
        prompt_id: The prompt.
        upstream: The component that writes the signal.
        layer, head: The downstream head that reads it.
        side: ``query`` (read at the firing's destination), ``key`` (at its source),
            ``value`` (moved from its source) or ``inhibit`` (at its competing source).
        token: Where the upstream component writes and the downstream head reads.
        role: That token's role, or None.
        dest, source: The downstream firing's token pair.
        weight: The upstream component's contribution to the side's signal.
        share: ``weight`` divided by the side's whole signal.
        singular_vectors, terms: The firing's sparse set S and its terms (the
            features through which the signal travels).
        relevance: The share of the prediction that flows through the edge (seed heads
            named by hand share each prompt's prediction evenly; see
            :mod:`headgraph.ingest.core.relevance`).
    """

    prompt_id: str
    upstream: Component
    layer: int
    head: int
    side: Side
    token: int
    role: str | None
    dest: int
    source: int
    weight: float
    share: float
    singular_vectors: tuple[int, ...]
    terms: tuple[float, ...]
    relevance: float = 0.0

    @property
    def head_name(self) -> str:
        return f"{self.layer}.{self.head}"
