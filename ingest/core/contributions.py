"""Tracing a firing's signal to the upstream components (METHOD.md section 4).

The residual at a token is the sum of every upstream component's output o_c, so
with signs eps_k = sign(x~_d . u_k) and the sparse set S of a firing, the
query-side signal splits exactly as

    sum_{k in S} eps_k sqrt(sigma_k) (x~_d . u_k)
        = sum_c  o_c(d) . w_q / scale_l(d)  +  w_q[d_model]
    with w_q = sum_{k in S} eps_k sqrt(sigma_k) u_k

and likewise on the key side with v_k at the source token. The last term, the
homogeneous coordinate, is the head's own QK bias node. Edges are the fewest
components whose positive contributions reach ``edge_frac`` of the positive
total.
"""

from __future__ import annotations

import torch
from torch import Tensor


def signal_weights(proj_u: Tensor, selected: Tensor, sigma: Tensor) -> Tensor:
    """Per-singular-vector weights ``eps_k sqrt(sigma_k)`` on S, zero elsewhere.

    Args:
        proj_u: ``[firing, rank]`` ``x~_d . u_k`` at each firing's destination.
        selected: ``[firing, rank]`` bool, the sparse set.
        sigma: ``[firing, rank]`` the firing head's singular values.

    Returns:
        ``[firing, rank]``.
    """
    eps = torch.where(proj_u < 0, -1.0, 1.0).to(proj_u.dtype)
    return eps * sigma.sqrt() * selected


def side_contributions(
    components: Tensor,
    scale: Tensor,
    vectors: Tensor,
    weights: Tensor,
    *,
    batch: Tensor,
    head: Tensor,
    token: Tensor,
    n_upstream: int,
) -> tuple[Tensor, Tensor]:
    """Contributions of the upstream components to one side's signal.

    All firings are in the same layer. Firings that read the same token share
    one matrix product with that token's upstream outputs, so each output is
    read once per token rather than copied once per firing.

    Args:
        components: ``[batch, pos, component, d_model]`` outputs on the component axis.
        scale: ``[batch, pos]`` that layer's LN scale.
        vectors: ``[head, d_model+1, rank]`` that layer's U (query side) or V (key side).
        weights: ``[firing, rank]`` from :func:`signal_weights`.
        batch, head, token: ``[firing]`` the prompt, head and token each side reads.
        n_upstream: Components upstream of the layer (a prefix of the axis).

    Returns:
        ``upstream [firing, n_upstream]`` and ``bias [firing]`` (the homogeneous
        coordinate); they sum to the side's signal.
    """
    n_firings, d_model = weights.shape[0], components.shape[-1]
    direction = weights.new_empty(n_firings, d_model + 1)  # sum_k w_k u_k, per firing
    for h in head.unique().tolist():
        rows = (head == h).nonzero().squeeze(-1)
        direction[rows] = weights[rows] @ vectors[h].T
    where = batch * components.shape[1] + token  # [firing] flat token index
    order = where.argsort(stable=True)
    tokens, counts = where[order].unique_consecutive(return_counts=True)
    outputs = components.flatten(0, 1)[:, :n_upstream]  # [batch*pos, n_upstream, d_model]
    upstream = weights.new_empty(n_firings, n_upstream)
    for t, rows in zip(tokens.tolist(), order.split(counts.tolist()), strict=True):
        upstream[rows] = (outputs[t] @ direction[rows, :d_model].T).T
    upstream /= scale.flatten()[where].unsqueeze(-1)
    return upstream, direction[:, d_model]


def select_edges(contributions: Tensor, *, frac: float) -> Tensor:
    """Keep the fewest components whose positive contributions reach ``frac`` of their total.

    Args:
        contributions: ``[firing, component]``.
        frac: Share of the positive total to reach.

    Returns:
        ``[firing, component]`` bool, True for kept components (never a
        non-positive one).
    """
    n, width = contributions.shape
    positive = contributions.clamp_min(0)
    ordered, order = positive.sort(dim=-1, descending=True, stable=True)
    running = ordered.cumsum(dim=-1)
    total = running[:, -1:] if width else running.new_zeros(n, 1)
    reached = running >= frac * total * (1 - 1e-6)
    count = torch.where(reached.any(dim=-1), reached.int().argmax(dim=-1) + 1, width)
    in_prefix = torch.arange(width, device=contributions.device).expand(n, width) < count[:, None]
    keep_ordered = in_prefix & (ordered > 0)
    return torch.zeros_like(keep_ordered).scatter(-1, order, keep_ordered)
