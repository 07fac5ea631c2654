"""Measure the causal effect of circuit edges (METHOD.md section 7), batched.

An edge ``8.6->9.9:query`` is every per-prompt edge from component 8.6 into
head 9.9's query side. In each batch of prompts the prompts are traced again
(with the run's seeds and thresholds, so the same edges come back), and for
each edge the part of the upstream output lying in the downstream firings'
singular directions is projected out, mean-centred (:mod:`headgraph.ingest.causal.intervene`):

- ``global``: where the upstream component writes, so every later reader sees it;
- ``local``: only in the downstream head's query (or key, or value) input.

A value edge is ablated along the direction its firing reads the source (there is
no sparse set on the value side), its control along a random direction of the
head's value input. An inhibition edge is ablated along the firing's score
gradient on S at the competitor's token (what keeps the head off it; ``local``:
in the head's key input there), its control along a random direction of the
head's key input.

The control projects out as many singular vectors of the same head drawn at
random from outside S. With ``boost`` the part is added again instead of
removed. The metric reads the next-token log-probabilities at one token of
each prompt (the ``role``, END by default; only that token is unembedded):
for IOI, the logit difference IO - S. It is read on the prompts where the
edge occurs, clean, changed and controlled. Many edges
share each forward pass: the changed and controlled copies of the prompts
are stacked up to ``2 * batch_size`` rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from headgraph.errors import InputError
from headgraph.groups import under_limit
from headgraph.ingest.causal.intervene import ablation_deltas
from headgraph.ingest.core.params import TraceParams, batch_bounds
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.trace import SIDES, check_inputs, pad_tokens, run_batch, trace_batch
from headgraph.names import EdgeKey, parse_head

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model

# The next-token log-probabilities at one token per prompt, [batch, vocab] -> [batch]
Metric = Callable[[Tensor, Sequence[Prompt]], Tensor]


@dataclass(frozen=True)
class EdgeEffect:
    """What changing one edge did to the metric, over the prompts where it occurs.

    Attributes:
        edge: The edge.
        mode: ``global`` or ``local``; ``boost``: added rather than removed.
        prompts: Prompts where the edge occurs (the means are over these).
        clean: The metric, unchanged.
        effect: Mean change of the metric with the edge's directions changed.
        control: Mean change with random singular vectors of the same head instead.
        difference: ``effect - control``.
        stderr: Standard error of ``difference`` (paired over prompts).
    """

    edge: EdgeKey
    mode: str
    boost: bool
    prompts: int
    clean: float
    effect: float
    control: float
    difference: float
    stderr: float


def ioi_logit_difference(log_probs: Tensor, prompts: Sequence[Prompt]) -> Tensor:
    """``[batch]`` logit difference IO - S of the next token (S read at S1).

    Args:
        log_probs: ``[batch, vocab]`` at END.
        prompts: Prompts with IO and S1 roles.

    Raises:
        ValueError: a prompt lacks the IO or S1 role.
    """
    missing = [p.id for p in prompts if not {"IO", "S1"} <= set(p.roles)]
    if missing:
        raise InputError(
            f"prompt {missing[0]!r} has no IO or S1 role: the IOI metric needs them "
            "(pass another metric for other tasks)"
        )
    rows = torch.arange(len(prompts))
    io = torch.tensor([p.tokens[p.roles["IO"]] for p in prompts])
    s = torch.tensor([p.tokens[p.roles["S1"]] for p in prompts])
    log_probs = log_probs.cpu()
    return (log_probs[rows, io] - log_probs[rows, s]).float()


def answer_metric(log_probs: Tensor, prompts: Sequence[Prompt]) -> Tensor:
    """``[batch]`` the answer's log-probability, less the wrong answer's where there is one
    (then a logit difference), at the position read.

    Raises:
        InputError: a prompt has no answer.
    """
    missing = next((p.id for p in prompts if p.answer is None), None)
    if missing is not None:
        raise InputError(f"prompt {missing!r} has no answer: the answer metric needs one")
    rows = torch.arange(len(prompts))
    log_probs = log_probs.cpu()
    answer = log_probs[rows, torch.tensor([p.answer for p in prompts])]
    wrong = torch.tensor([p.wrong if p.wrong is not None else -1 for p in prompts])
    against = torch.where(wrong >= 0, log_probs[rows, wrong.clamp_min(0)], 0.0)
    return (answer - against).float()


def probability_difference(log_probs: Tensor, prompts: Sequence[Prompt]) -> Tensor:
    """``[batch]`` the probability of the right tokens less that of the wrong ones
    (greater-than: the mass above the first year less the mass below).

    Raises:
        InputError: a prompt has no answer.
    """
    missing = next((p.id for p in prompts if not p.answers), None)
    if missing is not None:
        raise InputError(f"prompt {missing!r} has no answer: the probability metric needs one")
    probs = log_probs.cpu().exp()
    return torch.stack(
        [probs[b, list(p.answers)].sum() - probs[b, list(p.wrongs)].sum()
         for b, p in enumerate(prompts)]
    ).float()  # fmt: skip


METRICS = {
    "ioi": ioi_logit_difference,
    "answer": answer_metric,
    "probability": probability_difference,
}
TASK_METRICS = {"ioi": "ioi", "greater-than": "probability"}  # any other task: answer


def verify_edges(
    model: Model,
    prompts: Sequence[Prompt],
    edges: Sequence[EdgeKey],
    *,
    seeds: Sequence[Seed],
    params: TraceParams = TraceParams(),
    mode: str = "global",
    boost: bool = False,
    metric: Metric = ioi_logit_difference,
    role: str = "END",
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    counterfactuals: Sequence[Prompt] | None = None,
) -> list[EdgeEffect]:
    """The effect of each edge, with its control, over ``prompts`` (traced again as the run
    was: with its ``counterfactuals``, under that baseline).

    Raises:
        ValueError: an unknown mode or component, or bad prompts or seeds.
    """
    if mode not in ("global", "local"):
        raise InputError(f"mode {mode!r}: use global or local")
    if model.hooked.cfg.positional_embedding_type == "shortformer":
        raise InputError(
            f"{model.name}: its positions join the queries and keys after the unfolded ln1, "
            "which verify's ablation does not weigh: shortformer models are not supported "
            "by verify yet"
        )
    check_inputs(model, prompts, seeds, batch_size, params, counterfactuals=counterfactuals)
    lacking = next((p.id for p in prompts if role not in p.roles), None)
    if lacking is not None:
        raise InputError(f"prompt {lacking!r} has no {role} role, where the metric is read")
    axis = {c.name: i for i, c in enumerate(model.layout.components)}
    for edge in edges:
        if edge.upstream not in axis:
            raise InputError(
                f"{edge.name}: {edge.upstream} is not a component of {model.name} that writes "
                "into the residual stream (a head's own QK bias cannot be ablated)"
            )
    qk = model.qk.to(model.device, model.dtype)
    vectors = (qk.U, qk.V)
    any_value = any(e.side == "value" for e in edges)
    W_V = model.values.W_V.to(model.device, model.dtype) if any_value else None
    directions = any(e.side in ("value", "inhibit") for e in edges)
    sums = {e: torch.zeros(4, dtype=torch.float64) for e in edges}  # n, clean, effect, control
    differences = {e: [] for e in edges}  # per prompt: effect - control
    for start, end in batch_bounds(len(prompts), batch_size, params):
        batch = list(prompts[start:end])  # batched as the run was: the mean baseline's means
        tokens, lengths = pad_tokens(batch)
        acts = run_batch(model, batch, tokens, lengths, params)
        reference = None
        if counterfactuals is not None:
            reference = model.run(*pad_tokens(counterfactuals[start:end])).components
        traced = trace_batch(
            acts, qk, model.layout, batch, seeds, params, reference, directions=directions
        )
        at = torch.tensor([p.roles[role] for p in batch])
        clean = metric(model.log_probs(tokens, at=at), batch)  # [batch]
        items = []
        rotated = None if acts.rotary is None else (qk, acts.rotary)  # the model's dtype, as qk
        for edge in edges:
            rows = _rows(traced, edge, axis[edge.upstream])
            if rows.numel() == 0:
                continue
            occurs = traced.firings.batch[traced.edge_firing[rows]].unique()
            on_device, occurs = occurs, occurs.cpu()
            changes = []
            for control in (False, True):
                d = ablation_deltas(
                    traced, acts.components, vectors, rows=rows, control=control,
                    generator=control_generator(seed, edge, start),
                    rotated=rotated, W_V=W_V,
                )  # fmt: skip
                changes.append((-1 if boost else 1) * d[:, :, axis[edge.upstream]][on_device])
            items.append((edge, occurs, *changes))
        # each item's changed and controlled copies: 2 rows per prompt, 2 * batch_size a pass
        for chunk in under_limit(((i, 2 * len(i[1])) for i in items), 2 * batch_size):
            changed = _forward(model, tokens, at, chunk, axis, mode, metric, batch)
            for (edge, occurs, _, _), (effect, control) in zip(chunk, changed, strict=True):
                base = clean[occurs].double()
                total = sums[edge]
                total += torch.stack(
                    [torch.tensor(float(len(occurs))), base.sum(), (effect - base).sum(),
                     (control - base).sum()]
                )  # fmt: skip
                differences[edge].append((effect - control).double())
        if progress:
            progress(len(batch))
    return [_effect(edge, sums[edge], differences[edge], mode, boost) for edge in edges]


def control_generator(seed: int, edge: EdgeKey, start: int) -> torch.Generator:
    """The random draw of one edge's control in the batch starting at prompt ``start``.

    It depends on the seed, the edge and the batch alone, so an edge's control is
    the same whichever other edges are measured with it.
    """
    digest = hashlib.sha256(f"{seed}|{edge.name}|{start}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _rows(traced, edge: EdgeKey, component: int) -> Tensor:
    """The batch's per-prompt edges that make up ``edge``."""
    layer, head = parse_head(edge.head)
    firing = traced.edge_firing
    match = (
        (traced.edge_component == component)
        & (traced.firings.layer[firing] == layer)
        & (traced.firings.head[firing] == head)
        & (traced.edge_side == SIDES.index(edge.side))
    )
    return match.nonzero().squeeze(-1)


def _forward(
    model: Model, tokens, at, chunk, axis, mode, metric, batch
) -> list[tuple[Tensor, Tensor]]:
    """One forward pass for a chunk: each item's prompts changed, then controlled."""
    index = torch.cat([torch.cat([occurs, occurs]) for _, occurs, _, _ in chunk])
    stacked = tokens[index]  # [rows, pos]
    n_pos, d_model = tokens.shape[1], model.d_model
    deltas: dict = {}
    row = 0
    for edge, occurs, change, control in chunk:
        if mode == "global":
            key = axis[edge.upstream]
        else:
            layer, head = parse_head(edge.head)
            key = (layer, head, edge.side)
        if key not in deltas:
            deltas[key] = torch.zeros(len(index), n_pos, d_model, dtype=change.dtype)
        deltas[key][row : row + 2 * len(occurs)] = torch.cat([change, control]).cpu()
        row += 2 * len(occurs)
    if mode == "global":
        log_probs = model.log_probs(stacked, deltas, at=at[index])
    else:
        log_probs = model.log_probs_at_heads(stacked, deltas, at=at[index])
    values = metric(log_probs, [batch[i] for i in index.tolist()]).double()
    out, row = [], 0
    for _, occurs, _, _ in chunk:
        n = len(occurs)
        out.append((values[row : row + n], values[row + n : row + 2 * n]))
        row += 2 * n
    return out


def _effect(edge, total, per_batch, mode, boost) -> EdgeEffect:
    n, clean, effect, control = total.tolist()
    if not n:
        nan = float("nan")
        return EdgeEffect(edge, mode, boost, 0, nan, nan, nan, nan, nan)
    differences = torch.cat(per_batch)
    stderr = float(differences.std() / len(differences) ** 0.5) if len(differences) > 1 else 0.0
    return EdgeEffect(
        edge,
        mode,
        boost,
        int(n),
        clean / n,
        effect / n,
        control / n,
        (effect - control) / n,
        stderr,
    )
