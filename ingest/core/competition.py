"""Competition: which source a firing keeps its head off, and what that is worth.

A firing (d, s) of head h wins its destination's attention against every other
source t. What keeps t's score down is an inhibition (docs/core.md, "inhibit").
The competitor that matters is not the most attended one: it is the one whose
win would cost h's readers most. Against a baseline (the role mean, or a
counterfactual), each source t is scored by

    harm(t) = (A'(t) - A(d,t)) (rest_t - v_t),

what the readers would lose if t's input went to its baseline, the other scores
held:

- ``v_t = (x_t W_V + b_V) W_O . R(d)``: source t's value as h's readers read it
  (``R(d)``, the summed readers of :mod:`headgraph.ingest.core.values`);
- ``rest_t = (out - A(d,t) v_t) / (1 - A(d,t))``: what the other sources give,
  ``out = sum_t A(d,t) v_t`` being what the readers read;
- ``A'(t) = A e^D / (1 - A + A e^D)``: t's attention once its score moves by
  ``D = -(x_t - baseline_t) . g / attn_scale``, ``g = sum_k sigma_k (x~_d . u_k) v_k``
  being the score's gradient over every singular vector (the whole score moves,
  not only the firing's sparse set), in the softmax's own units.

A suppressed source has almost no attention, so a first-order (gradient) view
sees nothing there; the finite move to the baseline does. A firing's competitors
are the fewest sources, strongest first, whose harm reaches the edge rule's share
of its total positive harm (never token 0 or s, at most ``competitors``: 2 by
default, 4 in runs recorded before it); each inhibition
hands on ``harm / |out|`` of the firing's relevance, at most all of it. The key
side hands on the same share at the firing's own source, and the value side its
source's part of the head's output less the baseline's (of a seed's own share of
the prediction, measured from the value as it is, the part of that value that
differs from the baseline's). Where there are no
readers (no value side) or no baseline, the competitor is the most attended
other source and the key and inhibition sides are weighted by the softmax's
sensitivity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MAX_MOVE = 30.0  # a score move past this saturates the softmax anyway


@dataclass(frozen=True)
class Stakes:
    """What each firing's readers stand to lose, source by source (one layer).

    Attributes:
        lost: ``[firing, src]`` harm(t), the readers' loss if source t's input went to
            its baseline.
        out: ``[firing]`` what the readers read of the head now (NaN where the stakes are
            unknown: no readers).
        own_value: ``[firing]`` ``v_s``, the firing's own source's value as read.
        own_moved: ``[firing]`` ``v_s - v_s(baseline)``: that value less its baseline's.
        moved_out: ``[firing]`` ``sum_t A(d,t) (v_t - v_t(baseline))``: the head's output,
            as read, less its baseline's.
    """

    lost: Tensor
    out: Tensor
    own_value: Tensor
    own_moved: Tensor
    moved_out: Tensor

    def known(self) -> Tensor:
        """``[firing]`` bool: the firing's stakes are known."""
        return ~self.out.isnan()

    def lost_share(self, token: Tensor, rows: Tensor | None = None) -> Tensor:
        """The share of what the readers read that firings ``rows`` (default: every one)
        stand to lose if ``token``'s input went to its baseline, in [0, 1]; one per row."""
        if rows is None:
            rows = torch.arange(len(token), device=token.device)
        return (self.lost[rows, token] / self.out[rows].abs().clamp_min(1e-30)).clamp(0, 1)

    def seed_share(self) -> Tensor:
        """``[firing]`` the part of the firing's own source's value that differs from its
        baseline's, ``own_moved / |v_s|`` in [0, 1]: what the value side hands on of a seed's
        own share of the prediction, which is measured from the value as it is."""
        return (self.own_moved / self.own_value.abs().clamp_min(1e-30)).clamp(0, 1)

    def moved_share(self) -> Tensor:
        """``[firing]`` the share of the head's output, less its baseline's, that comes from
        the firing's own source per unit of attention, in [0, 1]: the value side's share."""
        return (self.own_moved / self.moved_out.abs().clamp_min(1e-30)).clamp(0, 1)


def competitors(
    stakes: Stakes, rows: Tensor, *, dest: Tensor, source: Tensor, frac: float, most: int
) -> tuple[Tensor, Tensor]:
    """The fewest competitors per firing whose harm reaches ``frac`` of its total (at most
    ``most``; never token 0 or the firing's own source).

    Args:
        stakes: The layer's stakes.
        rows: ``[n]`` firings with known stakes.
        dest, source: ``[n]`` theirs.
        frac: Share of the total positive harm to reach (the edge rule's ``edge_frac``).
        most: Competitors kept at most per firing.

    Returns:
        ``firing [m]`` (positions in ``rows``) and ``rival [m]``.
    """
    lost = stakes.lost[rows]
    allowed = allowed_sources(lost, dest=dest, source=source) & (lost > 0)
    lost = lost.masked_fill(~allowed, 0.0)
    worst, rival = lost.topk(min(most, lost.shape[-1]), dim=-1)
    before = worst.cumsum(-1) - worst
    keep = (worst > 0) & (before < frac * lost.sum(-1, keepdim=True))
    firing, j = keep.nonzero(as_tuple=True)
    return firing, rival[firing, j]


def allowed_sources(pattern: Tensor, *, dest: Tensor, source: Tensor) -> Tensor:
    """``[firing, src]`` the sources a firing competes with: up to d, not s, never token 0."""
    positions = torch.arange(pattern.shape[-1], device=pattern.device)
    allowed = (positions[None] <= dest[:, None]) & (positions[None] != source[:, None])
    allowed[:, 0] = False
    return allowed


def most_attended(pattern: Tensor, *, dest: Tensor, source: Tensor) -> Tensor:
    """Each firing's most attended other source (never token 0), -1 when there is none.

    Args:
        pattern: ``[firing, src]`` the head's attention from each firing's destination.
        dest, source: ``[firing]``.
    """
    allowed = allowed_sources(pattern, dest=dest, source=source)
    best = pattern.masked_fill(~allowed, -1.0).argmax(-1)
    return torch.where(allowed.any(-1), best, -1)


def harm(pattern: Tensor, values: Tensor, moves: Tensor) -> tuple[Tensor, Tensor]:
    """What the readers lose if each source's score moved to its baseline, the others held.

    Args:
        pattern: ``[firing, src]`` A(d, t).
        values: ``[firing, src]`` v_t, each source's value as the readers read it.
        moves: ``[firing, src]`` D, each source's score move to its baseline (softmax units).

    Returns:
        ``harm [firing, src]`` and ``out [firing]`` (what the readers read now).
    """
    out = (pattern * values).sum(-1)  # [firing]
    grown = pattern * moves.clamp(max=MAX_MOVE).exp()
    moved = grown / (1 - pattern + grown).clamp_min(1e-30)  # A'(t)
    rest = (out[:, None] - pattern * values) / (1 - pattern).clamp_min(1e-30)
    return (moved - pattern) * (rest - values), out


def reads(inputs: Tensor, directions: Tensor, batch: Tensor) -> Tensor:
    """``[firing, pos]`` each firing's direction read at every token of its block.

    One batched product over the blocks (each firing's direction padded into its
    block's), with no ``[firing, pos, d]`` copy of the inputs.

    Args:
        inputs: ``[block, pos, d]`` (a block: a prompt, or a prompt's head).
        directions: ``[firing, d]``.
        batch: ``[firing]`` each firing's block, in any order.
    """
    n_blocks = inputs.shape[0]
    counts = torch.bincount(batch, minlength=n_blocks)
    order = batch.argsort(stable=True)
    start = (counts.cumsum(0) - counts)[batch[order]]
    within = torch.empty_like(batch)  # each firing's place in its block
    within[order] = torch.arange(len(batch), device=batch.device) - start
    padded = directions.new_zeros(n_blocks, int(counts.max()) if len(batch) else 0,
                                  directions.shape[-1])  # fmt: skip
    padded[batch, within] = directions
    read = torch.bmm(inputs.to(directions.dtype), padded.transpose(1, 2))  # [block, pos, n_b]
    return read[batch, :, within]


def score_moves(relative: Tensor, gradient: Tensor) -> Tensor:
    """``[firing, src]`` each source's score move if its input went to its baseline.

    Args:
        relative: ``[firing, src, d_model]`` each source's input less its baseline,
            as the layer's query-key product reads it (after the norm's scale and
            weight).
        gradient: ``[firing, src, d_model]`` g, the score's gradient with respect to
            each source's input.
    """
    return -(relative * gradient.to(relative.dtype)).sum(-1)
