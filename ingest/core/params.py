"""The parameters of a trace: thresholds, seeding and edge options, and a run's record of them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from headgraph.errors import InputError
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.names import EDGE_SIDES

SIDE_NAMES = EDGE_SIDES
PAPER_SIDES = ("query", "key")  # the paper's trace: where a head looks, not what it moves
BASELINES = ("none", "mean", "counterfactual")
EDGE_RULES = ("positive", "signed")
WEIGHTINGS = ("stakes", "sensitivity")
# The mean baseline measures outputs against their mean over a batch's prompts: a batch
# has at least this many where the run has (a shorter last batch joins the one before),
# and a run of fewer is traced with no baseline when none was asked for.
MEAN_BATCH_MIN = 8

SEEDINGS = ("heads", "linear", "prob")
SEEDING_FIELDS = ("seeding", "seed_frac", "tau", "ig_steps", "top_k", "top_p")
# Edge options recorded only when they differ from the paper's trace, which runs
# recorded before they existed used (and which their JSON therefore implies).
EDGE_FIELDS = {
    "sides": PAPER_SIDES,
    "baseline": "none",
    "edge_rule": "positive",
    "weighting": "sensitivity",
    "competitors": 4,  # runs recorded before it (under the stakes weighting) took up to four
}


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
        sides: Which sides of a firing are decomposed into edges: ``query`` (at the
            destination), ``key`` (at the source), ``value`` (what the head moves from
            the source, read along what its readers use) and ``inhibit`` (what keeps
            the head off its strongest competing source, at that source); see
            docs/core.md. The default is every side, which path patching scores best
            (docs/verify.md); the paper traces ``query`` and ``key`` (:data:`PAPER_SIDES`).
        baseline: ``mean`` (each component's output less its mean over the batch's
            prompts at the same token role, so a constant input makes no edge; the
            default, which path patching scores best), ``counterfactual`` (less its
            output on each prompt's counterfactual, e.g. IOI's ABC corruption, given to
            the trace) or ``none`` (contributions as they are, the paper's). See
            :func:`batch_bounds`.
        edge_rule: ``positive`` (the fewest components reaching ``edge_frac`` of the
            positive contributions) or ``signed`` (of the signed total, as the authors'
            code; none when that total is not positive).
        weighting: What share of a firing's relevance its key, inhibition and value
            sides hand on, and which competitors it inhibits: ``stakes`` (what the
            head's readers stand to lose through each side, the competitors by that
            loss; needs the value side and a baseline, else as ``sensitivity``; the
            default, which path patching scores best) or ``sensitivity`` (the
            softmax's ``4 A (1 - A)``, the most attended competitor: runs traced
            before). See :mod:`headgraph.ingest.core.competition`.
        competitors: Under the stakes weighting, the most competitors a firing inhibits
            (the fewest whose loss reaches ``edge_frac`` of the total, at most this many).
            2 by default: path patching scores 2 as 4 on both bundled models
            (docs/verify.md) and the trace makes about 12% fewer edges; runs recorded
            before it took up to 4.
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
    sides: tuple[str, ...] = SIDE_NAMES
    baseline: str = "mean"
    edge_rule: str = "positive"
    weighting: str = "stakes"
    competitors: int = 2

    def __post_init__(self) -> None:
        unknown = [s for s in self.sides if s not in SIDE_NAMES]
        if unknown or not self.sides or len(set(self.sides)) != len(self.sides):
            raise InputError(
                f"sides {','.join(self.sides) or '(none)'}: give one or more of "
                f"{', '.join(SIDE_NAMES)}, each once"
            )
        object.__setattr__(self, "sides", tuple(s for s in SIDE_NAMES if s in self.sides))
        if self.baseline not in BASELINES:
            raise InputError(f"baseline {self.baseline!r}: use one of {', '.join(BASELINES)}")
        if self.edge_rule not in EDGE_RULES:
            raise InputError(f"edge rule {self.edge_rule!r}: use one of {', '.join(EDGE_RULES)}")
        if self.weighting not in WEIGHTINGS:
            raise InputError(f"weighting {self.weighting!r}: use one of {', '.join(WEIGHTINGS)}")
        if self.competitors < 1:
            raise InputError(f"competitors must be at least 1, got {self.competitors}")
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

    @classmethod
    def paper(cls, **options: Any) -> TraceParams:
        """The paper's trace (query and key sides, no baseline), with ``options``."""
        return cls(**{**EDGE_FIELDS, **options})


def batch_bounds(n_prompts: int, batch_size: int, params: TraceParams) -> list[tuple[int, int]]:
    """``(start, end)`` of each batch of a run: ``batch_size`` prompts each, in order.

    Under the mean baseline a last batch of fewer than :data:`MEAN_BATCH_MIN` prompts
    joins the batch before it (a mean over a handful of prompts is mostly the prompts
    themselves). The bounds of the batches from any batch on depend only on where it
    starts, so a resumed run batches its rest as the whole run did.
    """
    starts = list(range(0, n_prompts, batch_size))
    if params.baseline == "mean" and len(starts) > 1 and n_prompts - starts[-1] < MEAN_BATCH_MIN:
        starts.pop()
    return list(zip(starts, [*starts[1:], n_prompts][: len(starts)], strict=True))


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
        cls,
        prompts: Sequence[Prompt],
        seeds: Sequence[Seed],
        params: TraceParams,
        batch_size: int,
        counterfactuals: Sequence[Prompt] | None = None,
    ) -> RunParams:
        """The parameters of a run over ``prompts`` (and their counterfactuals, if any)."""
        digest = hashlib.sha256()
        for i, p in enumerate(prompts):
            answers = [p.answer, p.wrong] if p.answer is not None else []  # older runs: none
            if p.answer_set or p.wrong_set:
                answers += [list(p.answer_set), list(p.wrong_set)]
            if counterfactuals is not None:
                answers.append(list(counterfactuals[i].tokens))
            digest.update(json.dumps([p.id, list(p.tokens), dict(p.roles), *answers]).encode())
        return cls(params, tuple(seeds), batch_size, digest.hexdigest())

    def to_json(self) -> str:
        """The JSON recorded on the run (keys sorted, so equal runs give equal text)."""
        params = asdict(self.params)
        if self.params.seeding == "heads":  # as runs recorded before seeding existed
            for name in SEEDING_FIELDS:
                del params[name]
        for name, legacy in EDGE_FIELDS.items():
            if getattr(self.params, name) == legacy:
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
            options: dict[str, Any] = {k: data.get(k, getattr(defaults, k)) for k in SEEDING_FIELDS}
            for name, legacy in EDGE_FIELDS.items():
                value = data.get(name, legacy)
                options[name] = tuple(value) if isinstance(value, list) else value
            params = TraceParams(
                data["attention_threshold"], data["signal_frac"], data["edge_frac"], **options
            )
            seeds = tuple(Seed.from_name(s) for s in data["seeds"])
            return cls(params, seeds, int(data["batch_size"]), str(data["prompts_sha256"]))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"not a run's recorded parameters ({error})") from None
