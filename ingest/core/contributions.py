"""Tracing a firing's signal to the upstream components (METHOD.md section 4).

The residual at a token is the sum of every upstream component's output o_c, so
with signs eps_k = sign(x~_d . u_k) and the sparse set S of a firing, the
query-side signal splits exactly as

    sum_{k in S} eps_k sqrt(sigma_k) (x~_d . u_k)
        = sum_c  o_c(d) . w_q / scale_l(d)  +  w_q[d_model]
    with w_q = sum_{k in S} eps_k sqrt(sigma_k) u_k

and likewise on the key side with v_k at the source token. The last term, the
homogeneous coordinate, is the head's own QK bias node. In a rotary model
w_q is taken in the rotated frame at the token's position (see
:mod:`headgraph.ingest.core.rotary`); where the normalisation's weight and bias
are not folded into W_Q (shortformer), o_c is weighted by it and its bias
joins the bias node. Edges are the fewest
components whose positive contributions reach ``edge_frac`` of the positive
total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from headgraph.ingest.core.rotary import Rotary, rotate
from headgraph.ingest.core.scratch import Scratch, Workspace


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


def head_groups(head: Tensor) -> tuple[Tensor, list[tuple[int, slice]]]:
    """Rows grouped by head, for one product per head.

    Args:
        head: ``[n]`` each row's head.

    Returns:
        ``order [n]``, the rows by head (stable), and each head's ``(head, slice)`` of it.
    """
    order = head.argsort(stable=True)
    heads, counts = head[order].unique_consecutive(return_counts=True)
    ends = counts.cumsum(0).tolist()
    starts = [0, *ends[:-1]]
    return order, list(zip(heads.tolist(), map(slice, starts, ends), strict=True))


@dataclass(frozen=True)
class SignalDirections:
    """Each firing's signal direction on one side, ``sum_k w_k u_k`` in the augmented input
    space, held as its weights until written where it is read (a ``[firing, d_model+1]``
    table costs more to fill than to compute).

    Attributes:
        weights: ``[firing, rank]`` from :func:`signal_weights`.
        vectors: ``[head, d_model+1, rank]`` the layer's U (query side) or V (key side).
        head, token: ``[firing]`` the firing's head and the token the side reads (the
            token matters only with rotation).
        rotated: For a rotary model, the layer's ``(factor [head, d_model+1, d_head],
            readout [head, d_head, rank], rotary, layer)``: the direction is then
            ``A R_p^T (A^+ U) w``, which depends on the token's position ``p``.
    """

    weights: Tensor
    vectors: Tensor
    head: Tensor
    token: Tensor | None = None
    rotated: tuple[Tensor, Tensor, Rotary, int] | None = None

    def __len__(self) -> int:
        return len(self.weights)

    def write(self, out: Tensor, at: Tensor, *, scratch: Scratch | None = None) -> Tensor:
        """Write each direction's first ``d_model`` coordinates to ``out[at]`` (``at [firing]``)
        and return the last, the homogeneous coordinate's ``[firing]`` (``scratch``: unused,
        as :meth:`SharedDirections.write` takes it)."""
        direction, order = self._formed()
        if order is None:
            out.index_copy_(0, at, direction[:, :-1])
            return direction[:, -1]
        out.index_copy_(0, at[order], direction[:, :-1])
        return torch.empty_like(direction[:, -1]).index_copy_(0, order, direction[:, -1])

    def dense(self) -> Tensor:
        """``[firing, d_model+1]``."""
        direction, order = self._formed()
        if order is None:
            return direction
        return torch.empty_like(direction).index_copy_(0, order, direction)

    def _formed(self) -> tuple[Tensor, Tensor | None]:
        """``[firing, d_model+1]`` the directions, and None when they are in firing order,
        else the order they are in (``[firing]`` positions)."""
        if self.rotated is None and 2 * self.weights.count_nonzero() <= self.weights.numel():
            return self._summed(), None  # at most half the weights are nonzero: sum those
        return self._by_head()

    def _summed(self) -> Tensor:
        """``[firing, d_model+1]`` each direction summed from its weighted singular vectors
        alone: a sparse set holds a few of them, and a product with every one would mostly
        add zeros."""
        firing, k = self.weights.nonzero(as_tuple=True)  # [nnz] each, by firing
        n_heads, d_aug, rank = self.vectors.shape
        table = self.vectors.transpose(1, 2).reshape(n_heads * rank, d_aug)  # a row per vector
        start = torch.searchsorted(firing, torch.arange(len(self), device=firing.device))
        return F.embedding_bag(
            self.head[firing] * rank + k, table, start, mode="sum",
            per_sample_weights=self.weights[firing, k],
        )  # fmt: skip

    def _by_head(self) -> tuple[Tensor, Tensor]:
        """``[firing, d_model+1]`` the directions by one product per head, in head order,
        and that order (``[firing]`` positions)."""
        order, groups = head_groups(self.head)
        weights = self.weights[order]
        direction = weights.new_empty(len(self), self.vectors.shape[1])
        for h, rows in groups:
            if self.rotated is None:
                torch.mm(weights[rows], self.vectors[h].T, out=direction[rows])
            else:
                factor, readout, rotary, layer = self.rotated
                if self.token is None:
                    raise ValueError("a rotated direction needs the token it is read at")
                where = self.token[order[rows]]
                small = weights[rows] @ readout[h].T  # [rows, d_head], in the rotated frame
                small = rotate(small, rotary.cos[layer, where], rotary.sin[layer, where],
                               adjacent=rotary.adjacent, inverse=True)  # fmt: skip
                torch.mm(small, factor[h].T, out=direction[rows])
        return direction, order


@dataclass(frozen=True)
class SharedDirections:
    """Directions formed once and read at several tokens (a firing's score gradient, read at
    each of its competitors): side ``i`` reads along ``table[row[i]]``.

    Attributes:
        table: ``[n, d_model+1]`` the directions, in the augmented input space.
        row: ``[m]`` each side's row of ``table``.
    """

    table: Tensor
    row: Tensor

    def __len__(self) -> int:
        return len(self.row)

    def write(self, out: Tensor, at: Tensor, *, scratch: Scratch | None = None) -> Tensor:
        """As :meth:`SignalDirections.write`; the rows are gathered in ``scratch`` if given
        (memory already touched), then copied to ``out``."""
        shape = len(self.row), self.table.shape[1]
        into = None if scratch is None else scratch.take(*shape, like=self.table)
        rows = torch.index_select(self.table, 0, self.row, out=into)  # faster than [row, :-1]
        out.index_copy_(0, at, rows[:, :-1])
        return rows[:, -1].clone()

    def dense(self) -> Tensor:
        """``[m, d_model+1]``."""
        return self.table.index_select(0, self.row)


def signal_directions(
    weights: Tensor,
    vectors: Tensor,
    *,
    head: Tensor,
    token: Tensor | None = None,
    rotated: tuple[Tensor, Tensor, Rotary, int] | None = None,
) -> Tensor:
    """Each firing's signal direction on one side, ``[firing, d_model+1]`` (the arguments
    are :class:`SignalDirections`'s)."""
    return SignalDirections(weights, vectors, head, token, rotated).dense()


@dataclass(frozen=True)
class TokenReads:
    """Some sides' contributions, with what they read grouped by token.

    Attributes:
        upstream: ``[m, n_upstream]`` each upstream component's contribution.
        bias: ``[m]`` the homogeneous coordinate's, plus the normalisation's bias; with
            ``upstream`` it sums to the side's signal.
        direction: ``[m, d_model]`` each side's reading direction through the
            normalisation's weight, rows grouped by token (contiguous: a sparse product
            takes it as it is).
        row: ``[m]`` each side's row of ``direction``, in the order the sides came.
    """

    upstream: Tensor
    bias: Tensor
    direction: Tensor
    row: Tensor


def read_tokens(
    components: Tensor,
    scale: Tensor,
    directions: Sequence[Tensor | SignalDirections | SharedDirections],
    *,
    batch: Tensor,
    token: Tensor,
    n_upstream: int,
    ln_weight: Tensor | None = None,
    ln_bias: Tensor | None = None,
    positions_after_norm: bool = False,
    workspace: Workspace | None = None,
) -> TokenReads:
    """Contributions of the upstream components to some sides' signals.

    All sides are in the same layer. Sides that read the same token share one
    matrix product with that token's upstream outputs, so each output is read once
    per token rather than copied once per side. The product is bound by reading
    the outputs from memory: the tracer reads a layer's sides in one call, so that
    a token several sides read is read once.

    Args:
        components: ``[batch, pos, component, d_model]`` outputs on the component axis.
        scale: ``[batch, pos]`` that layer's normalisation scale.
        directions: One or more blocks of sides, ``[m_i, d_model+1]`` tables or
            :class:`SignalDirections` or :class:`SharedDirections`; the ``m`` sides are
            their rows in turn.
        batch, token: ``[m]`` the prompt and token each side reads.
        n_upstream: Components upstream of the layer (a prefix of the axis).
        ln_weight, ln_bias: ``[d_model]`` the layer's unfolded normalisation weight
            and bias, if any (see :class:`~headgraph.ingest.core.activations.Activations`).
        positions_after_norm: Component 1 (positions) is added after the
            normalisation: neither scaled nor weighted.
        workspace: Memory for the grouped directions and their products (the
            directions then stay valid until its next use).
    """
    d_model = components.shape[-1]
    where = batch * components.shape[1] + token  # [m] flat token index
    order = where.argsort(stable=True)  # the sides grouped by token
    row = torch.empty_like(order)
    row[order] = torch.arange(len(order), device=order.device)
    workspace = workspace or Workspace()
    grouped = workspace.directions.take(len(order), d_model, like=components)  # in that order
    last, start = [], 0  # the homogeneous coordinates
    for block in directions:  # each block straight to its rows: no copy of them all
        at = row[start : start + len(block)]
        if isinstance(block, SignalDirections | SharedDirections):
            last.append(block.write(grouped, at, scratch=workspace.gathered))
        else:
            grouped.index_copy_(0, at, block[:, :d_model])
            last.append(block[:, d_model])
        start += len(block)
    bias = torch.cat(last)
    if ln_bias is not None:
        bias = bias + (grouped @ ln_bias)[row]
    outputs = components.flatten(0, 1)[:, :n_upstream]  # [batch*pos, n_upstream, d_model]
    if positions_after_norm:  # before the weight
        at_position = (outputs[where, 1] * grouped[row]).sum(-1)
    if ln_weight is not None:
        grouped *= ln_weight
    tokens, counts = where[order].unique_consecutive(return_counts=True)
    read = workspace.products.take(len(order), n_upstream, like=grouped)  # in that order
    by_token = outputs.transpose(1, 2).unbind(0)  # [d_model, n_upstream] each: views, no copy
    sizes = counts.tolist()
    pieces = zip(grouped.split(sizes), read.split(sizes), strict=True)
    for t, (sides, into) in zip(tokens.tolist(), pieces, strict=True):
        torch.mm(sides, by_token[t], out=into)
    upstream = read.index_select(0, row)
    upstream /= scale.flatten()[where].unsqueeze(-1)
    if positions_after_norm:
        upstream[:, 1] = at_position
    return TokenReads(upstream, bias, grouped, row)


PARTIAL = 32  # the strongest components sorted first: nearly every firing needs fewer


def select_edges(contributions: Tensor, *, frac: float, rule: str = "positive") -> Tensor:
    """Keep the fewest components, strongest first, whose contributions reach ``frac`` of a total.

    Ties are taken in component order. Only the ``PARTIAL`` strongest of each row are
    sorted; the rows they do not settle are sorted whole.

    Args:
        contributions: ``[firing, component]``.
        frac: Share of the total to reach.
        rule: ``positive``: the total is the positive contributions' sum (headgraph);
            ``signed``: the signed sum of all of them (the authors' code), and a firing
            whose signed total is not positive keeps none.

    Returns:
        ``[firing, component]`` bool, True for kept components (never a
        non-positive one).
    """
    n, width = contributions.shape
    positive = contributions.clamp_min(0)
    total = contributions.sum(-1) if rule == "signed" else positive.sum(-1)  # [n]
    target = frac * total * (1 - 1e-6)
    if rule == "signed":
        target = torch.where(total > 0, target, torch.full_like(target, float("inf")))
    if n == 0 or width == 0:
        return torch.zeros_like(positive, dtype=torch.bool)
    strongest = positive.topk(min(PARTIAL, width), dim=-1).values  # [n, k] descending
    reached = strongest.cumsum(dim=-1) >= target[:, None]
    settled = reached.any(dim=-1)
    count = reached.int().argmax(dim=-1)  # the last kept one's rank, counted from 0
    last = strongest.gather(-1, count[:, None])  # [n, 1] its value
    kept = (positive >= last) & (positive > 0)
    # more tied with the last one than the count has room for: the first in component order
    # (settled rows only: the rest are sorted whole below)
    crowded = (settled & (kept.sum(dim=-1) > count + 1)).nonzero().squeeze(-1)
    if len(crowded):
        row, at = positive[crowded], last[crowded]
        tied = row == at
        room = count[crowded] + 1 - (row > at).sum(dim=-1)
        kept[crowded] &= (row > at) | (tied.cumsum(dim=-1) <= room[:, None])
    rest = (~settled).nonzero().squeeze(-1)
    if len(rest):
        kept[rest] = _select_sorted(positive[rest], target[rest], signed=rule == "signed")
    return kept


def _select_sorted(positive: Tensor, target: Tensor, *, signed: bool) -> Tensor:
    """:func:`select_edges` by a whole sort of each row (``positive [n, width]``,
    ``target [n]``): a row that never reaches its target keeps every positive
    component, or none under the signed rule."""
    n, width = positive.shape
    ordered, order = positive.sort(dim=-1, descending=True, stable=True)
    reached = ordered.cumsum(dim=-1) >= target[:, None]
    count = torch.where(
        reached.any(dim=-1), reached.int().argmax(dim=-1) + 1, 0 if signed else width
    )
    in_prefix = torch.arange(width, device=positive.device).expand(n, width) < count[:, None]
    keep_ordered = in_prefix & (ordered > 0)
    return torch.zeros_like(keep_ordered).scatter(-1, order, keep_ordered)
