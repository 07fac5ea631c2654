"""Relevance: the share of the prediction that flows through each traced edge.

Seeds carry their share of the prediction (their weight over the prompt's
total; with seed heads named by hand, each prompt's seed firings share it
evenly). A firing of head h at destination d carries h's relevance at d times
its attention A(d, s), plus its own share if it is a seed. Each side hands its
firing's relevance to its edges in proportion to their part of the side's
positive contributions; the query, key and inhibition sides are weighted by
the softmax's sensitivity ``4 A (1 - A)`` (1 at A = 1/2, 0 at a saturated
firing, whose attention its inputs can hardly move). An edge's relevance adds
to its upstream head's relevance at the edge's token, and tracing goes on from
there; a seed's value edges report only what stays lost when the seed alone
goes to its baseline (``core.final_norm``), and hand up the whole share.
Summed over prompts and divided by their number, relevance ranks a run's edges
on one scale whichever side they are on (docs/core.md; measured against path
patching in docs/verify.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from headgraph.ingest.core.seeding import PredictionSeeds, PredictionSplit
from headgraph.ingest.core.signals import FiringTable
from headgraph.ingest.core.values import ReaderTable


def sensitivity(attention: Tensor) -> Tensor:
    """``4 A (1 - A)``: how far a change of score moves the attention, 1 at its steepest."""
    return 4 * attention * (1 - attention)


def seed_relevance(
    firings: FiringTable,
    traced: Tensor,
    seeded: PredictionSeeds | None,
    prediction: PredictionSplit | None,
    forced: Tensor | None,
) -> Tensor:
    """``[firing]`` each seed firing's share of the prediction (zero for other firings).

    Args:
        firings: The batch's firings.
        traced: ``[firing]`` bool, the seed firings (before tracing).
        seeded, prediction, forced: Seeds from the prediction (``forced`` gives the
            batch's shape), or None for seed heads.
    """
    f_b = firings.batch
    if seeded is None or prediction is None or forced is None:
        first = traced.to(firings.score.dtype)
        per_prompt = torch.zeros(int(f_b.max()) + 1 if len(f_b) else 0, dtype=first.dtype,
                                 device=f_b.device).index_add_(0, f_b, first)  # fmt: skip
        return first / per_prompt[f_b].clamp_min(1)
    out = torch.zeros(len(firings), dtype=firings.score.dtype, device=f_b.device)
    # firings come ordered by (batch, layer, head, dest, source): find each seed's row by its
    # flat key rather than through a [batch, layer, head, pos, pos] index
    n_layers, n_heads, n_pos = forced.shape[1], forced.shape[2], forced.shape[3]

    def flat(b, l, h, d, s):
        return (((b * n_layers + l) * n_heads + h) * n_pos + d) * n_pos + s

    keys = flat(f_b, firings.layer, firings.head, firings.dest, firings.source)
    wanted = flat(seeded.batch, seeded.layer, seeded.head, prediction.dest[seeded.batch],
                  seeded.source)  # fmt: skip
    if not len(keys):
        return out
    at = torch.searchsorted(keys, wanted).clamp_max(len(keys) - 1)
    found = keys[at] == wanted  # a seed at token 0 (which never fires) is no firing
    out[at[found]] = seeded.share[found].to(out.dtype)
    return out


def read_seeds(readers: ReaderTable, seeded: PredictionSeeds, split: PredictionSplit) -> None:
    """A seed head's output at the answer position is read along the prediction's reader
    (once per prompt and head, whichever of its sources are seeds)."""
    if split.reader is None or len(seeded) == 0:
        return
    b, l, h = _seed_heads(seeded)
    readers.add(l, b, h, split.dest[b], split.reader[b].to(split.heads.dtype))


def seeds_kept_alone(
    seeded: PredictionSeeds, split: PredictionSplit, components: Tensor, head_columns: Tensor
) -> Tensor | None:
    """``[batch, layer, head]`` the part of each seed head's loss that stays lost when its
    output alone goes to its baseline, through the final norm (1 for every other head);
    None when the split does not say what the norm reads (``core.final_norm``).

    Args:
        seeded: The batch's seeds.
        split: Its prediction, with ``reader`` and ``final``.
        components: ``[batch, pos, component, d_model]`` baseline-relative outputs.
        head_columns: ``[layer, head]`` each head's position on the component axis.
    """
    if split.final is None or split.reader is None:
        return None
    kept = torch.ones(components.shape[0], *head_columns.shape, dtype=components.dtype,
                      device=components.device)  # fmt: skip
    if len(seeded) == 0:
        return kept
    b, l, h = _seed_heads(seeded)
    delta = components[b, split.dest[b], head_columns[l, h]]  # [n, d_model]
    kept[b, l, h] = split.final.kept(delta, split.reader[b].to(delta.dtype), b)
    return kept


def _seed_heads(seeded: PredictionSeeds) -> tuple[Tensor, Tensor, Tensor]:
    """``batch, layer, head [n]``: each prompt's seed heads, once each however many of
    their sources are seeds."""
    key = torch.stack([seeded.batch, seeded.layer, seeded.head], -1).unique(dim=0)
    b, l, h = key.unbind(-1)
    return b, l, h
