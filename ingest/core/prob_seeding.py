"""Probability-aware seeds from the prediction (METHOD.md section 10; ACC++'s default).

The final residual at the answer position d is a sum of *units*: each head's
output split by source token, ``A(d, s) v_s W_O``, and every other component,
each divided by the final normalisation's scale. With the logits
``z = b_U + (sum of units) W_U`` (soft-capped where the model caps them) and a
target support T (the answer tokens, or the top-k / top-p of the clean
distribution), the objective is ``J(z) = log sum_{t in T} softmax(z)_t``.

- Baseline ``z' = b_U`` (every unit removed); completeness ``C = J(clean) - J(z')``.
  ``C <= 0``: no seeds.
- Integrated gradients along the straight path ``z(a) = b_U + a (sum of units) W_U``
  (trapezoid, ``ig_steps`` intervals): since every unit enters through the same
  W_U, ``IG_i = unit_i . G`` with ``G = sum_a w_a W_U dJ/dz(z(a))`` (one vector per
  prompt), and the attributions add up to C.
- Greedy removal in the order of IG, recomputing J exactly after each removal,
  until ``tau`` of C is destroyed or the next attribution is <= 0. The removed
  heads (by source) are the seeds, weighted by their IG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from headgraph.errors import InputError
from headgraph.ingest.core.final_norm import FinalNorm
from headgraph.ingest.core.seeding import PredictionSeeds, PredictionSplit, token_sets

if TYPE_CHECKING:  # the activations hold a Readout: import them for types only
    from headgraph.ingest.core.activations import Activations
    from headgraph.ingest.core.components import ComponentLayout
    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.core.records import Prompt


@dataclass(frozen=True)
class Readout:
    """What the unembedding reads at each prompt's answer position, unit by unit.

    Attributes:
        heads: ``[batch, layer, head, src, d_model]`` each head's output by source token.
        others: ``[batch, component, d_model]`` every other component's output (heads zero).
        unembed: ``[d_model, vocab]`` W_U.
        bias: ``[vocab]`` b_U.
        cap: The logits' soft cap (0: none).
        scale: ``[batch]`` the final normalisation's scale, which every unit is divided by.
        final: The final residual as the final norm reads it, or None.
    """

    heads: Tensor
    others: Tensor
    unembed: Tensor
    bias: Tensor
    cap: float = 0.0
    scale: Tensor | None = None
    final: FinalNorm | None = None

    def logits(self, residual: Tensor) -> Tensor:
        """``[..., vocab]`` logits of ``[..., d_model]`` residuals."""
        z = residual @ self.unembed + self.bias
        return self.cap * torch.tanh(z / self.cap) if self.cap else z


def support_mask(logits: Tensor, answers: Tensor, *, top_k: int = 0, top_p: float = 0.0) -> Tensor:
    """``[batch, vocab]`` bool: the answer tokens (``answers [batch, n]``, -1 padding), or the
    clean distribution's top-k tokens, or its smallest top set holding ``top_p`` mass."""
    mask = torch.zeros_like(logits, dtype=torch.bool)
    if top_k:
        mask.scatter_(1, logits.topk(top_k, dim=-1).indices, True)
    elif top_p:
        probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
        before = probs.cumsum(-1) - probs  # mass ranked above each token
        mask.scatter_(1, order, before < top_p)
    else:
        rows = torch.arange(len(answers)).unsqueeze(-1).expand_as(answers)
        keep = answers >= 0
        mask[rows[keep], answers[keep]] = True
    return mask


def objective(logits: Tensor, support: Tensor) -> Tensor:
    """``J = log P(support)`` ``[...]``, for logits and support ``[..., vocab]``."""
    return torch.logsumexp(logits.masked_fill(~support, float("-inf")), -1) - torch.logsumexp(
        logits, -1
    )


def integrated_gradients(readout: Readout, support: Tensor, *, steps: int) -> Tensor:
    """``G [batch, d_model]`` such that a unit's attribution is ``unit . G``.

    At each point ``x_a = a r`` of the path the gradient of J with respect to the
    residual is ``W_U dJ/dz`` (soft cap included), so G is their trapezoid average.
    """
    residual = readout.heads.sum((1, 2, 3)) + readout.others.sum(1)  # [batch, d_model]
    alphas = torch.linspace(0, 1, steps + 1, dtype=residual.dtype, device=residual.device)
    weights = torch.full_like(alphas, 1.0 / steps)
    weights[0] = weights[-1] = 0.5 / steps
    points = (alphas[:, None, None] * residual).detach().requires_grad_(True)  # [a, batch, d]
    # weights made under inference mode (a shortformer's centred W_U) cannot enter autograd
    readout = replace(readout, unembed=readout.unembed.clone(), bias=readout.bias.clone())
    with torch.enable_grad():
        objective(readout.logits(points), support).sum().backward()
    assert points.grad is not None
    return torch.einsum("a,abm->bm", weights, points.grad)


@dataclass(frozen=True)
class ProbSeeding:
    """Per prompt: the attributions, the objective, and the seeds.

    Attributes:
        heads: ``[batch, layer, head, src]`` IG attribution of each head by source.
        components: ``[batch, component]`` IG of every component (heads summed by source).
        clean, baseline: ``[batch]`` J with every unit, and with none (``b_U`` alone).
        seeds: The removed heads (by source), weighted by IG, share of C.
        gradient: ``[batch, d_model]`` G: a unit's attribution is ``unit . G``.
    """

    heads: Tensor
    components: Tensor
    clean: Tensor
    baseline: Tensor
    seeds: PredictionSeeds
    gradient: Tensor


def prob_seeds(
    readout: Readout,
    support: Tensor,
    *,
    head_columns: Tensor,
    tau: float = 0.8,
    steps: int = 64,
    chunk: int = 16,
) -> ProbSeeding:
    """Attribute J by integrated gradients, then remove units greedily (see the module).

    Args:
        readout: The units at each prompt's answer position.
        support: ``[batch, vocab]`` bool, the target support T.
        head_columns: ``[component]`` bool, which components are heads (split by source
            in ``readout.heads``; their columns of ``readout.others`` are zero).
        tau: The share of C the removal must destroy.
        steps: Integration intervals.
        chunk: Removals evaluated per batched step.
    """
    n_batch, n_layers, n_heads, n_src, d_model = readout.heads.shape
    gradient = integrated_gradients(readout, support, steps=steps)  # [batch, d_model]
    head_ig = torch.einsum("blhsm,bm->blhs", readout.heads, gradient)
    other_ig = torch.einsum("bcm,bm->bc", readout.others, gradient)
    components = other_ig.clone()
    components[:, head_columns] = head_ig.sum(-1).flatten(1)
    units = torch.cat([readout.heads.flatten(1, 3), readout.others], dim=1)  # [batch, unit, d]
    ig = torch.cat([head_ig.flatten(1), other_ig], dim=1)  # [batch, unit]
    residual = units.sum(1)
    clean = objective(readout.logits(residual), support)
    baseline = objective(readout.logits(torch.zeros_like(residual)), support)
    target = clean - tau * (clean - baseline)  # J must fall to this

    order = ig.argsort(-1, descending=True)
    ranked_ig = ig.gather(1, order)
    removed = torch.zeros(n_batch, dtype=torch.long, device=ig.device)  # how many, per prompt
    done = clean - baseline <= 0  # no prediction beyond b_U: no seeds
    taken = torch.zeros_like(residual)
    for start in range(0, units.shape[1], chunk):
        active = (~done).nonzero().squeeze(-1)  # only prompts still removing cost anything
        if active.numel() == 0:
            break
        idx = order[active, start : start + chunk]  # [active, k]
        picked = units[active].gather(1, idx[..., None].expand(-1, -1, d_model))
        cumulative = taken[active, None] + picked.cumsum(1)  # removed so far, after each
        logits = readout.logits(residual[active, None] - cumulative)  # [active, k, vocab]
        value = objective(logits, support[active, None])
        positive = ranked_ig[active, start : start + chunk] > 0
        reached = value <= target[active, None]
        # the first removal that reaches the target ends it; a non-positive IG ends it before
        stop_at = torch.where(reached.any(1), reached.int().argmax(1) + 1, idx.shape[1])
        no_more = torch.where((~positive).any(1), (~positive).int().argmax(1), idx.shape[1])
        removed[active] += torch.minimum(stop_at, no_more)
        done[active] |= reached.any(1) | (~positive).any(1)
        taken[active] = cumulative[:, -1]
    kept = torch.arange(units.shape[1], device=ig.device)[None] < removed[:, None]
    unit = torch.where(kept, order, -1)
    rows, columns = (unit >= 0).nonzero(as_tuple=True)
    chosen = unit[rows, columns]
    is_head = chosen < n_layers * n_heads * n_src
    b, flat = rows[is_head], chosen[is_head]
    l, h, s = flat // (n_heads * n_src), flat // n_src % n_heads, flat % n_src
    weight = head_ig[b, l, h, s]
    seeds = PredictionSeeds(b, l, h, s, weight, weight / (clean - baseline)[b])
    return ProbSeeding(head_ig, components, clean, baseline, seeds, gradient)


def prob_prediction(
    acts: Activations,
    prompts: Sequence[Prompt],
    layout: ComponentLayout,
    params: TraceParams,
) -> tuple[PredictionSplit, PredictionSeeds]:
    """Probability-aware seeds of a batch, and its prediction recorded as a split: each
    unit's IG attribution, the baseline J as the bias (so shares plus bias ~ clean J)."""
    readout = acts.readout
    if readout is None:
        raise InputError("probability-aware seeding needs a forward pass with its readout")
    dest = acts.lengths - 1
    residual = readout.heads.sum((1, 2, 3)) + readout.others.sum(1)
    logits = readout.logits(residual)  # [batch, vocab]
    answers = token_sets([p.answers for p in prompts]).to(logits.device)
    support = support_mask(logits, answers, top_k=params.top_k, top_p=params.top_p)
    result = prob_seeds(readout, support, head_columns=layout.head_mask(), tau=params.tau,
                        steps=params.ig_steps)  # fmt: skip
    correct = support.gather(1, logits.argmax(-1, keepdim=True))[:, 0]
    reader = None if readout.scale is None else result.gradient / readout.scale[:, None]
    split = PredictionSplit(
        dest, result.heads, result.components, result.baseline, correct, "log-probability",
        reader, readout.final,
    )  # fmt: skip
    return split, result.seeds
