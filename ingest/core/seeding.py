"""Seeds from the model's own prediction (METHOD.md section 10, linear seeding as in ACC).

At each prompt's answer position d (its last token) the final residual is the
sum of every component's output, so its logit difference along a direction
``w = W_U[:, answer] - W_U[:, wrong]`` (or ``W_U[:, answer]``) splits exactly:

    logit_diff = sum_c o_c(d) . w / scale_final(d)  +  b_U . (answer - wrong)

A head's output at d is ``sum_s A(d, s) v_s W_O``: split once more by source
token s, each head's share says *from where* it moved what the answer needs.
The shares of every (head, source) and every other component are sorted;
the cutoff is the first share at which the running sum exceeds ``frac`` of the
total, lowered to half the total if it is above that; every (head, source)
at or above it is a seed, traced from its firing (d -> s). A total <= 0 means
the answer comes from the unembedding bias alone: no seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from headgraph.ingest.core.final_norm import FinalNorm


@dataclass(frozen=True)
class PredictionSplit:
    """Each prompt's logit difference at its answer position, split into components.

    Attributes:
        dest: ``[batch]`` the answer position (where the prediction is read).
        heads: ``[batch, layer, head, src]`` each head's share through each source token.
        components: ``[batch, component]`` every component's share (a head's summed
            over its sources).
        bias: ``[batch]`` the unembedding bias's share.
        correct: ``[batch]`` bool, the model prefers the answer (to ``wrong``, or to
            every other token when no wrong answer is given).
        measure: What is split: ``logit difference`` (shares exact; ``bias`` is the
            unembedding bias's share) or ``log-probability`` (of the support; shares
            are integrated-gradient attributions, ``bias`` the value with no unit).
        reader: ``[batch, d_model]`` what reads the final residual: a component's share
            is its output at ``dest`` dotted with it (the value side of a seed reads
            along it), or None.
        final: The final residual at ``dest`` as the final norm reads it (what the norm
            restores when one head alone is removed), or None.
    """

    dest: Tensor
    heads: Tensor
    components: Tensor
    bias: Tensor
    correct: Tensor
    measure: str = "logit difference"
    reader: Tensor | None = None
    final: FinalNorm | None = None

    @property
    def total(self) -> Tensor:
        """``[batch]`` the components' shares summed (the logit difference less the bias)."""
        return self.components.sum(-1)


def split_prediction(
    *,
    pattern_at: Tensor,
    values: Tensor,
    output_weights: Tensor,
    components_at: Tensor,
    direction: Tensor,
    scale: Tensor,
    head_gain: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The (head, source) shares and every component's share along the logit direction.

    Args:
        pattern_at: ``[batch, layer, head, src]`` attention from the answer position.
        values: ``[batch, layer, src, head, d_head]`` value vectors (grouped heads expanded).
        output_weights: ``[layer, head, d_head, d_model]`` W_O.
        components_at: ``[batch, component, d_model]`` every output at the answer position.
        direction: ``[batch, d_model]`` the logit direction.
        scale: ``[batch]`` the final normalisation's scale there.
        head_gain: ``[batch, layer, d_model]`` a per-layer factor on the heads' outputs
            (a frozen post-attention RMSNorm), or None.

    Returns:
        ``heads [batch, layer, head, src]`` and ``components [batch, component]``.
    """
    read = direction[:, None, :] if head_gain is None else direction[:, None, :] * head_gain
    through = torch.einsum("lhem,blm->blhe", output_weights, read)  # [batch, layer, head, d_head]
    moved = torch.einsum("blshe,blhe->blhs", values, through)  # [batch, layer, head, src]
    heads = pattern_at * moved / scale[:, None, None, None]
    components = torch.einsum("bcm,bm->bc", components_at, direction) / scale[:, None]
    return heads, components


@dataclass(frozen=True)
class PredictionSeeds:
    """The (head, source) pairs kept as seeds, one row each.

    Attributes:
        batch, layer, head, source: ``[seed]``; the seed's firing is
            (answer position -> source).
        weight: ``[seed]`` its share of the logit difference.
        share: ``[seed]`` weight / the prompt's total.
    """

    batch: Tensor
    layer: Tensor
    head: Tensor
    source: Tensor
    weight: Tensor
    share: Tensor

    def __len__(self) -> int:
        return self.batch.shape[0]


def linear_seeds(
    split: PredictionSplit, *, head_columns: Tensor, frac: float = 1.0
) -> PredictionSeeds:
    """Apply the cutoff rule to every prompt at once.

    Args:
        split: The prompts' split predictions.
        head_columns: ``[component]`` bool, True for heads (they compete split by source).
        frac: Share of the total that the running sum must exceed.
    """
    n_batch, n_layers, n_heads, n_src = split.heads.shape
    others = split.components.masked_fill(head_columns, 0.0)  # [batch, component]
    units = torch.cat([split.heads.flatten(1), others], dim=1)  # [batch, unit]
    total = units.sum(-1, keepdim=True)  # [batch, 1]
    ordered = units.sort(dim=-1, descending=True).values
    running = ordered.cumsum(-1)
    slack = 1e-6 * units.abs().sum(-1, keepdim=True)
    reached = running >= frac * total - slack
    first = torch.where(reached.any(-1), reached.int().argmax(-1), units.shape[1] - 1)
    cutoff = torch.minimum(ordered.gather(-1, first[:, None]), total / 2)  # [batch, 1]
    kept = (split.heads >= cutoff[:, :, None, None]) & (split.heads > 0)
    kept &= (total > 0)[:, :, None, None]
    b, l, h, s = kept.nonzero(as_tuple=True)
    weight = split.heads[b, l, h, s]
    return PredictionSeeds(b, l, h, s, weight, weight / total[b, 0])


def token_sets(sets: Sequence[Sequence[int]]) -> Tensor:
    """``[batch, n]`` token sets (the answers, or the wrong ones, of each prompt), right-padded
    with -1."""
    width = max((len(s) for s in sets), default=1) or 1
    return torch.tensor([[*s, *[-1] * (width - len(s))] for s in sets], dtype=torch.long)
