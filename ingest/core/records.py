"""Typed records: prompts, seeds, parameters, firings and edges.

Names follow the paper: a head *fires* on a token pair (destination, source)
when it attends strongly from the destination to the source; the *signal* of a
firing is carried by a few *singular vectors* of the head's augmented QK
matrix; an *edge* says that an upstream component writes that signal, on the
*query side* (at the destination token) or the *key side* (at the source).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Literal

from headgraph.errors import InputError
from headgraph.ingest.core.components import Component
from headgraph.names import parse_head

Side = Literal["query", "key"]


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


SEEDINGS = ("heads", "linear", "prob")
SEEDING_FIELDS = ("seeding", "seed_frac", "tau", "ig_steps", "top_k", "top_p")


def choose_seeding(
    seed_from: str | None, prompts: Sequence[Prompt], *, given: bool, support: bool = False
) -> str:
    """``heads``, ``linear`` or ``prob``: as asked, or the default (linear when every prompt
    has an answer and no seed heads or roles were ``given``).

    Args:
        seed_from: What was asked for, or None.
        prompts: The prompts.
        given: Seed heads or roles were given.
        support: Probability-aware seeding has a support of its own (top-k or top-p), so
            the prompts need no answers.

    Raises:
        InputError: seeding from the prediction asked for with seed heads, or a prompt
            without the answer it needs.
    """
    if seed_from in ("linear", "prob") and given:
        raise InputError("seed from the prediction or from seed heads, not both")
    if seed_from is None:
        seed_from = (
            "linear" if not given and all(p.answer is not None for p in prompts) else "heads"
        )
    if seed_from == "linear" or (seed_from == "prob" and not support):
        missing = next((p.id for p in prompts if p.answer is None), None)
        if missing is not None:
            raise InputError(
                f"prompt {missing!r} has no answer: seeding from the prediction needs every "
                "prompt's answer (an answer field in a prompts file), a support of its own "
                "(--top-k, --top-p with --seed-from prob), or seed heads"
            )
    return seed_from


@dataclass(frozen=True)
class TraceParams:
    """Thresholds of the method (METHOD.md sections 3-4), recorded on every run.

    Attributes:
        attention_threshold: A pair fires when its attention weight is at least this.
        signal_frac: The sparse set S is the shortest prefix of the sorted terms
            whose sum exceeds ``signal_frac`` times the score.
        edge_frac: On each side, the fewest upstream components whose positive
            contributions reach this share of the positive total become edges.
        seeding: ``heads`` (the seeds name heads and roles), ``linear`` (seeds from
            each prompt's logit difference, :mod:`headgraph.ingest.core.seeding`) or
            ``prob`` (from the probability of the answer support,
            :mod:`headgraph.ingest.core.prob_seeding`).
        seed_frac: Linear seeding's cutoff share.
        tau: Probability-aware seeding: the share of the support's log-probability
            (above the unembedding bias alone) that removing the seeds destroys.
        ig_steps: Probability-aware seeding: integrated-gradient intervals.
        top_k, top_p: Probability-aware seeding's support: the clean distribution's
            top-k tokens, or its top-p mass, instead of the answer (0: unused).
    """

    attention_threshold: float = 0.5
    signal_frac: float = 1.0
    edge_frac: float = 0.7
    seeding: str = "heads"
    seed_frac: float = 1.0
    tau: float = 0.8
    ig_steps: int = 64
    top_k: int = 0
    top_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.attention_threshold <= 1.0:
            raise InputError(
                f"attention_threshold must be in (0, 1], got {self.attention_threshold}"
            )
        if not 0.0 < self.signal_frac <= 1.0:
            raise InputError(f"signal_frac must be in (0, 1], got {self.signal_frac}")
        if not 0.0 < self.edge_frac <= 1.0:
            raise InputError(f"edge_frac must be in (0, 1], got {self.edge_frac}")
        if self.seeding not in SEEDINGS:
            raise InputError(f"seeding {self.seeding!r}: use one of {', '.join(SEEDINGS)}")
        if not 0.0 < self.seed_frac <= 1.0:
            raise InputError(f"seed_frac must be in (0, 1], got {self.seed_frac}")
        if not 0.0 < self.tau <= 1.0:
            raise InputError(f"tau must be in (0, 1], got {self.tau}")
        if self.ig_steps < 1:
            raise InputError(f"ig_steps must be at least 1, got {self.ig_steps}")
        if self.top_k < 0 or not 0.0 <= self.top_p <= 1.0:
            raise InputError(
                f"top_k must be >= 0 and top_p in [0, 1], got {self.top_k}, {self.top_p}"
            )
        if self.top_k and self.top_p:
            raise InputError("give top_k (--top-k) or top_p (--top-p) for the support, not both")


@dataclass(frozen=True)
class RunParams:
    """Everything that determines a run's graph, recorded on the run as JSON.

    A resumed run must match it exactly; ``verify`` reads it back to trace the
    run's prompts again with the same seeds and thresholds.

    Attributes:
        params: The thresholds.
        seeds: The seeds.
        batch_size: Prompts per batch (and per store transaction).
        prompts_sha256: A digest of the prompts' ids, tokens and roles.
    """

    params: TraceParams
    seeds: tuple[Seed, ...]
    batch_size: int
    prompts_sha256: str

    @classmethod
    def of(
        cls, prompts: Sequence[Prompt], seeds: Sequence[Seed], params: TraceParams, batch_size: int
    ) -> RunParams:
        """The parameters of a run over ``prompts``."""
        digest = hashlib.sha256()
        for p in prompts:
            answers = [p.answer, p.wrong] if p.answer is not None else []  # older runs: none
            if p.answer_set or p.wrong_set:
                answers += [list(p.answer_set), list(p.wrong_set)]
            digest.update(json.dumps([p.id, list(p.tokens), dict(p.roles), *answers]).encode())
        return cls(params, tuple(seeds), batch_size, digest.hexdigest())

    def to_json(self) -> str:
        """The JSON recorded on the run (keys sorted, so equal runs give equal text)."""
        params = asdict(self.params)
        if self.params.seeding == "heads":  # as runs recorded before seeding existed
            for name in SEEDING_FIELDS:
                del params[name]
        return json.dumps(
            {
                **params,
                "seeds": [s.name for s in self.seeds],
                "batch_size": self.batch_size,
                "prompts_sha256": self.prompts_sha256,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RunParams:
        """Read what :meth:`to_json` wrote.

        Raises:
            InputError: the text is not a run's parameters.
        """
        try:
            data = json.loads(text)
            defaults = TraceParams()
            params = TraceParams(
                data["attention_threshold"], data["signal_frac"], data["edge_frac"],
                **{k: data.get(k, getattr(defaults, k)) for k in SEEDING_FIELDS},
            )  # fmt: skip
            seeds = tuple(Seed.from_name(s) for s in data["seeds"])
            return cls(params, seeds, int(data["batch_size"]), str(data["prompts_sha256"]))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"not a run's recorded parameters ({error})") from None


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
        side: ``query`` (read at the firing's destination) or ``key`` (at its source).
        token: Where the upstream component writes and the downstream head reads.
        role: That token's role, or None.
        dest, source: The downstream firing's token pair.
        weight: The upstream component's contribution to the side's signal.
        share: ``weight`` divided by the side's whole signal.
        singular_vectors, terms: The firing's sparse set S and its terms (the
            features through which the signal travels).
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

    @property
    def head_name(self) -> str:
        return f"{self.layer}.{self.head}"
