"""Firings and their sparse signals (METHOD.md section 3).

With x~ = [x; 1] and the augmented SVD (U, Sigma, V) of a head, the unscaled
attention score of destination d attending to source s splits into one term
per singular vector:

    a(d, s) = sum_k t_k,    t_k = sigma_k (x~_d . u_k)(x~_s . v_k)

A pair *fires* when its attention weight reaches the threshold, its score is
non-negative and its source is not token 0. The *sparse set* S of a firing is
the shortest prefix of its terms, strongest first, whose sum exceeds
``signal_frac`` times the score. Everything is batched over prompts, heads and
token pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.rotary import Rotary, rotate

if TYPE_CHECKING:
    from headgraph.ingest.core.activations import Activations
    from headgraph.ingest.core.svd import QKDecomposition


def augment(x: Tensor) -> Tensor:
    """Append the homogeneous coordinate: ``[..., d_model] -> [..., d_model+1]``."""
    return torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)


def project(x_tilde: Tensor, vectors: Tensor) -> Tensor:
    """Project every layer's augmented inputs on that layer's singular vectors.

    Args:
        x_tilde: ``[batch, layer, pos, d_model+1]`` augmented attention inputs.
        vectors: ``[layer, head, d_model+1, rank]`` (U for the query side, V for the key side).

    Returns:
        ``[batch, layer, head, pos, rank]``: ``x~ . u_k`` (or ``. v_k``).
    """
    return torch.einsum("blpd,lhdr->blhpr", x_tilde, vectors)


def project_rotated(x_tilde: Tensor, factor: Tensor, readout: Tensor, rotary: Rotary) -> Tensor:
    """:func:`project` for rotary heads, through the rotated frame.

    Args:
        x_tilde: ``[batch, layer, pos, d_model+1]`` augmented attention inputs.
        factor: ``[layer, head, d_model+1, d_head]`` ``A = [W_Q; b_Q]`` (or B).
        readout: ``[layer, head, d_head, rank]`` ``A^+ U`` (or ``B^+ V``).
        rotary: The model's rotary tables.

    Returns:
        ``[batch, layer, head, pos, rank]``: ``x^ . u_k = (R_p A^T x~) . (A^+ u_k)``.
    """
    n_pos = x_tilde.shape[2]
    vectors = torch.einsum("blpd,lhde->blhpe", x_tilde, factor)  # [batch, layer, head, pos, d_head]
    cos = rotary.cos[:, None, :n_pos]  # [layer, 1, pos, rotary_dim]
    sin = rotary.sin[:, None, :n_pos]
    rotated = rotate(vectors, cos, sin, adjacent=rotary.adjacent)
    return torch.einsum("blhpe,lher->blhpr", rotated, readout)


def projections(acts: Activations, qk: QKDecomposition) -> tuple[Tensor, Tensor]:
    """Every layer's attention inputs projected on its heads' singular vectors.

    From the forward pass's own query and key vectors when it kept them:
    ``x~ . u_k = (x~ A) . (A^+ u_k)``, since ``u_k`` lies in the span of ``A``'s columns;
    ``d_head`` products per singular vector instead of ``d_model + 1``. Else from the
    augmented inputs, rotated for a rotary model.

    Returns:
        ``proj_u, proj_v [batch, layer, head, pos, rank]``: ``x~ . u_k`` and ``x~ . v_k``
        (in the rotated frame for a rotary model).
    """
    if acts.query_vectors is not None and acts.key_vectors is not None:
        return (
            torch.einsum("blphe,lher->blhpr", acts.query_vectors, qk.query_readout),
            torch.einsum("blphe,lher->blhpr", acts.key_vectors, qk.key_readout),
        )
    x_tilde = augment(acts.normalized)  # [batch, layer, pos, d_model+1]
    if acts.rotary is None:
        return project(x_tilde, qk.U), project(x_tilde, qk.V)
    rotary = acts.rotary.to(x_tilde.dtype)
    return (
        project_rotated(x_tilde, qk.query_factor, qk.query_readout, rotary),
        project_rotated(x_tilde, qk.key_factor, qk.key_readout, rotary),
    )


def pair_terms(proj_u: Tensor, proj_v: Tensor, sigma: Tensor) -> Tensor:
    """Terms of every token pair (dense; for checks and small inputs).

    Args:
        proj_u, proj_v: ``[batch, layer, head, pos, rank]``.
        sigma: ``[layer, head, rank]``.

    Returns:
        ``[batch, layer, head, dest, src, rank]``, summing over rank to the unscaled score.
    """
    u = proj_u.unsqueeze(-2) * sigma[:, :, None, None, :]  # [batch, layer, head, dest, 1, rank]
    return u * proj_v.unsqueeze(-3)  # [batch, layer, head, dest, src, rank]


@dataclass(frozen=True)
class FiringTable:
    """Every firing of a batch, as columns (one row per firing).

    Attributes:
        batch, layer, head, dest, source: ``[firing]`` long indices.
        attention: ``[firing]`` attention weights.
        score: ``[firing]`` unscaled scores ``a(d, s)``.
        terms: ``[firing, rank]`` the terms ``t_k`` in singular-vector order.
        order: ``[firing, width]`` S's singular-vector indices, strongest term first,
            in each row's first ``size`` columns (the columns past them mean nothing).
        size: ``[firing]`` |S|, so the sparse set is ``order[:, :size]``.
        selected: ``[firing, rank]`` bool, True for singular vectors in S.
    """

    batch: Tensor
    layer: Tensor
    head: Tensor
    dest: Tensor
    source: Tensor
    attention: Tensor
    score: Tensor
    terms: Tensor
    order: Tensor
    size: Tensor
    selected: Tensor

    def __len__(self) -> int:
        return self.batch.shape[0]


PARTIAL_RANK = 8  # the strongest terms sorted first: nearly every sparse set is smaller


def sparse_set(terms: Tensor, *, frac: float) -> tuple[Tensor, Tensor, Tensor]:
    """The sparse set S of each firing.

    Terms are sorted descending (ascending when the score is negative) and S is
    the shortest prefix whose running sum exceeds ``frac`` times the score; if
    rounding keeps every prefix short of it, S is every singular vector. Terms
    that tie keep their singular-vector order (a stable sort).

    Only the ``PARTIAL_RANK`` strongest terms are sorted at first; a firing whose
    set is not within them, or whose strongest terms tie, is sorted in full.

    Args:
        terms: ``[firing, rank]``.
        frac: Share of the score that S must exceed.

    Returns:
        ``order [firing, width]`` S's singular vectors, strongest first, in each row's
        first ``size`` columns (``width``: at least the largest size; the columns past a
        row's size mean nothing), ``size [firing]``, ``selected [firing, rank]`` (bool,
        in singular-vector order).
    """
    n, rank = terms.shape
    total = terms.sum(dim=-1, keepdim=True)  # [firing, 1]
    sign = torch.where(total < 0, -1.0, 1.0).to(terms.dtype)
    signed = terms * sign
    slack = 1e-6 * terms.abs().sum(dim=-1, keepdim=True)  # rounding of the two summation orders
    target = frac * total * sign - slack  # [firing, 1]
    width = min(PARTIAL_RANK, rank)
    strongest, order = signed.topk(min(width + 1, rank), dim=-1)  # [firing, width (+1)]
    reached = strongest[:, :width].cumsum(dim=-1) >= target
    size = reached.int().argmax(dim=-1) + 1
    # topk's order among equal terms is not the stable one: such rows are sorted in full
    redo = (~reached.any(dim=-1)) | (strongest[:, 1:] == strongest[:, :-1]).any(dim=-1)
    order = order[:, :width]
    if redo.any():
        rows = redo.nonzero().squeeze(-1)
        ordered, full = signed[rows].sort(dim=-1, descending=True, stable=True)
        reached = ordered.cumsum(dim=-1) >= target[rows]
        size[rows] = torch.where(reached.any(dim=-1), reached.int().argmax(dim=-1) + 1, rank)
        width = max(width, int(size[rows].max()))
        order = torch.cat([order, order.new_zeros(n, width - order.shape[1])], dim=-1)
        order[rows] = full[:, :width]
    firing, at = (torch.arange(width, device=terms.device) < size[:, None]).nonzero(as_tuple=True)
    selected = torch.zeros(n, rank, dtype=torch.bool, device=terms.device)
    selected[firing, order[firing, at]] = True
    return order, size, selected


def find_firings(
    pattern: Tensor,
    proj_u: Tensor,
    proj_v: Tensor,
    sigma: Tensor,
    lengths: Tensor,
    *,
    params: TraceParams,
    forced: Tensor | None = None,
) -> FiringTable:
    """Find every firing of a batch and its sparse signal.

    Args:
        pattern: ``[batch, layer, head, dest, src]`` attention weights.
        proj_u, proj_v: ``[batch, layer, head, pos, rank]`` from :func:`project`.
        sigma: ``[layer, head, rank]`` singular values.
        lengths: ``[batch]`` real (unpadded) prompt lengths.
        params: Thresholds.
        forced: ``[batch, layer, head, dest, src]`` bool, pairs taken whatever their
            attention and the sign of their score (seeds from the prediction: the head
            moved what the answer needs from that source), or None.

    Returns:
        The firings, ordered by (batch, layer, head, dest, source).
    """
    n_pos = pattern.shape[-1]
    positions = torch.arange(n_pos, device=pattern.device)
    real = positions < lengths[:, None]  # [batch, pos]
    candidate = pattern >= params.attention_threshold
    if forced is not None:
        candidate |= forced
    candidate &= real[:, None, None, :, None]
    candidate[..., 0] = False  # source 0 is where attention sinks park
    b, l, h, d, s = candidate.nonzero(as_tuple=True)
    terms = sigma[l, h] * proj_u[b, l, h, d] * proj_v[b, l, h, s]  # [firing, rank]
    score = terms.sum(dim=-1)
    keep = score >= 0  # a forced pair (a seed the prediction names) is kept whatever its score
    if forced is not None:
        keep |= forced[b, l, h, d, s]
    b, l, h, d, s, terms, score = (t[keep] for t in (b, l, h, d, s, terms, score))
    order, size, selected = sparse_set(terms, frac=params.signal_frac)
    return FiringTable(
        batch=b,
        layer=l,
        head=h,
        dest=d,
        source=s,
        attention=pattern[b, l, h, d, s],
        score=score,
        terms=terms,
        order=order,
        size=size,
        selected=selected,
    )


def seed_mask(firings: FiringTable, prompts: Sequence[Prompt], seeds: Iterable[Seed]) -> Tensor:
    """``[firing]`` bool: the firings the seeds name (roles checked by
    :func:`~headgraph.ingest.core.trace.check_inputs`)."""
    wanted = torch.tensor(  # [seed x prompt, 5]: batch, layer, head, dest, source (-1: any)
        [
            (
                b,
                seed.layer,
                seed.head,
                prompt.roles[seed.dest_role],
                prompt.roles[seed.source_role] if seed.source_role else -1,
            )
            for seed in seeds
            for b, prompt in enumerate(prompts)
        ],
        dtype=torch.long,
        device=firings.batch.device,
    ).reshape(-1, 5)
    have = torch.stack(
        [firings.batch, firings.layer, firings.head, firings.dest, firings.source], -1
    )  # [firing, 5]
    if not len(have) or not len(wanted):
        return torch.zeros(len(have), dtype=torch.bool, device=have.device)
    radix = torch.maximum(have.amax(0), wanted.amax(0)) + 1

    def key(rows: Tensor, width: int) -> Tensor:  # the first ``width`` columns as one integer
        out = rows[:, 0]
        for c in range(1, width):
            out = out * radix[c] + rows[:, c]
        return out

    any_source = wanted[:, 4] == -1
    return torch.isin(key(have, 4), key(wanted[any_source], 4)) | torch.isin(
        key(have, 5), key(wanted[~any_source], 5)
    )
