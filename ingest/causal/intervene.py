"""Causal checks of traced edges: project the signal out (METHOD.md section 7).

Ablating an edge c -> (l, h) removes, from the upstream component's output at
the edge's token, the part lying in the span of the downstream firing's
selected singular vectors (U_S on the query side, V_S on the key side; in a
rotary model, read in the rotated frame at the edge's token), mean-centred
over the prompts:

    o_c' = o_c - P_S (o_c - mean(o_c))

This is the *global* form: the change is made where c writes, so every later
reader sees it. Several edges leaving the same component at the same token are
ablated together through the span of all their singular vectors. The control
replaces each edge's S by as many singular vectors of the same head drawn at
random from outside S.

A value edge has no singular vectors: its firing reads the source along one
direction, ``w = W_V W_O R(d)`` (what the head moves, as its readers read it;
docs/core.md), and that direction is projected out the same way. Its control is
a random direction of the head's value input (the span of its ``W_V``)
orthogonal to ``w``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from headgraph.ingest.core.baseline import role_means
from headgraph.ingest.core.rotary import Rotary, rotate
from headgraph.ingest.core.svd import QKDecomposition
from headgraph.ingest.core.trace import SIDES, BatchTrace


def edge_bases(
    trace: BatchTrace,
    vectors: tuple[Tensor, Tensor],
    rows: Tensor,
    *,
    control: bool,
    generator: torch.Generator | None = None,
    rotated: tuple[QKDecomposition, Rotary] | None = None,
) -> Tensor:
    """The singular vectors each edge carries, ``[edge, d_model, rank]`` (zero columns off S).

    Args:
        trace: A batch's trace.
        vectors: The model's ``(U, V)``, ``[layer, head, d_model+1, rank]``.
        rows: ``[edge]`` which edges of ``trace``.
        control: Draw |S| singular vectors from outside S instead of S.
        generator: For the control's draw.
        rotated: A rotary model's decomposition and rotary tables: each singular
            vector is then read in the rotated frame at the edge's token,
            ``A R_p^T (A^+ u_k)`` (see :mod:`headgraph.ingest.core.rotary`).
    """
    f = trace.firings
    firing = trace.edge_firing[rows]
    selected = f.selected[firing]  # [edge, rank]
    if control:
        noise = torch.rand(selected.shape, generator=generator).to(selected.device)
        noise[selected] = 2.0  # never pick S itself
        picked = noise.argsort(dim=-1).argsort(dim=-1) < selected.sum(-1, keepdim=True)
        selected = picked & ~selected
    U, V = vectors
    layer, head = f.layer[firing], f.head[firing]
    side = trace.edge_side[rows]
    if rotated is None:
        chosen = torch.where(side[:, None, None] == 0, U[layer, head], V[layer, head])
    else:
        qk, rotary = rotated
        query = side[:, None, None] == 0
        readout = torch.where(query, qk.query_readout[layer, head], qk.key_readout[layer, head])
        factor = torch.where(query, qk.query_factor[layer, head], qk.key_factor[layer, head])
        where = trace.edge_token[rows]
        small = rotate(
            readout.transpose(1, 2),  # [edge, rank, d_head]
            rotary.cos[layer, where][:, None], rotary.sin[layer, where][:, None],
            adjacent=rotary.adjacent, inverse=True,
        )  # fmt: skip
        chosen = factor @ small.transpose(1, 2)  # [edge, d_model+1, rank]
    return chosen[:, :-1, :] * selected[:, None, :]  # drop the homogeneous coordinate


def value_bases(
    trace: BatchTrace,
    W_V: Tensor,
    rows: Tensor,
    *,
    control: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[edge, d_model, 1]``: the unit direction each value edge is read along, or for
    the control a random unit direction of the head's value input orthogonal to it.

    Args:
        trace: A batch's trace, with its edges' directions (``directions=True``).
        W_V: The model's ``[layer, head, d_model, d_head]``.
        rows: ``[edge]`` which (value) edges of ``trace``.
        control: Draw the control's directions.
        generator: For the control's draw.
    """
    firing = trace.edge_firing[rows]
    span = W_V[trace.firings.layer[firing], trace.firings.head[firing]]  # [edge, d, d_head]
    return _read_bases(trace, rows, span, control=control, generator=generator)


def inhibition_bases(
    trace: BatchTrace,
    V: Tensor,
    rows: Tensor,
    *,
    control: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``[edge, d_model, 1]``: the unit direction each inhibition edge is read along (the
    firing's score gradient on S, at its competitor), or for the control a random unit
    direction of the head's key input orthogonal to it.

    Args:
        trace: A batch's trace, with its edges' directions (``directions=True``).
        V: The model's key-side singular vectors, ``[layer, head, d_model+1, rank]``.
        rows: ``[edge]`` which (inhibition) edges of ``trace``.
        control: Draw the control's directions.
        generator: For the control's draw.
    """
    firing = trace.edge_firing[rows]
    span = V[trace.firings.layer[firing], trace.firings.head[firing], :-1]  # [edge, d, rank]
    return _read_bases(trace, rows, span, control=control, generator=generator)


def _read_bases(
    trace: BatchTrace,
    rows: Tensor,
    span: Tensor,
    *,
    control: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """``[edge, d_model, 1]``: each edge's unit reading direction, or a random unit direction
    of ``span [edge, d_model, k]`` orthogonal to it."""
    assert trace.edge_direction is not None, "trace the batch with directions=True"
    w = trace.edge_direction[rows]  # [edge, d_model]
    w = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    if control:
        draw = torch.randn(len(rows), span.shape[-1], 1, generator=generator).to(span)
        v = (span @ draw)[..., 0]
        v = v - (v * w).sum(-1, keepdim=True) * w
        w = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return w[:, :, None]


def ablation_deltas(
    trace: BatchTrace,
    components: Tensor,
    vectors: tuple[Tensor, Tensor],
    *,
    rows: Tensor | None = None,
    control: bool = False,
    generator: torch.Generator | None = None,
    rotated: tuple[QKDecomposition, Rotary] | None = None,
    W_V: Tensor | None = None,
) -> Tensor:
    """What to add to each component's output to ablate the chosen edges.

    Args:
        trace: A batch's trace.
        components: ``[batch, pos, component, d_model]`` the batch's component outputs.
        vectors: The model's ``(U, V)`` in the components' dtype.
        rows: ``[edge]`` edges to ablate (default: every query, key and value edge whose
            upstream is in the residual stream, i.e. all but the heads' own QK bias; an
            inhibition edge is ablated only when asked for, along its score gradient at
            the competitor).
        control: Ablate random singular vectors from outside S instead.
        generator: For the control's draw.
        rotated: For a rotary model, see :func:`edge_bases`.
        W_V: The model's value weights, for value edges (:func:`value_bases`).

    Returns:
        ``[batch, pos, component, d_model]`` deltas (zero where nothing is ablated).
    """
    n_axis = components.shape[2]
    if rows is None:
        kept = (trace.edge_component < n_axis) & (trace.edge_side != SIDES.index("inhibit"))
        rows = kept.nonzero().squeeze(-1)
    deltas = torch.zeros_like(components)
    if rows.numel() == 0:
        return deltas
    batch = trace.firings.batch[trace.edge_firing[rows]]
    token, component = trace.edge_token[rows], trace.edge_component[rows]
    side = trace.edge_side[rows]
    value, inhibit = side == SIDES.index("value"), side == SIDES.index("inhibit")
    rank = trace.firings.selected.shape[-1]
    bases = components.new_zeros(len(rows), components.shape[-1], rank)
    if bool(value.any()):  # one direction each, in the first column
        if W_V is None:
            raise ValueError("ablating value edges needs the model's W_V")
        bases[value, :, :1] = value_bases(
            trace, W_V, rows[value], control=control, generator=generator
        )
    if bool(inhibit.any()):
        bases[inhibit, :, :1] = inhibition_bases(
            trace, vectors[1], rows[inhibit], control=control, generator=generator
        )
    sparse = ~(value | inhibit)
    if bool(sparse.any()):
        bases[sparse] = edge_bases(
            trace, vectors, rows[sparse], control=control, generator=generator, rotated=rotated
        )

    # One span per (prompt, token, component): stack its edges' vectors, orthonormalise.
    n_pos = components.shape[1]
    key = (batch * n_pos + token) * n_axis + component
    groups, group_of = key.unique(return_inverse=True)
    edge, k = (bases.abs().sum(1) > 0).nonzero(as_tuple=True)  # the vectors in use
    if edge.numel() == 0:
        return deltas
    group_of_vector = group_of[edge]
    columns = _rank_within_group(group_of_vector)
    stacked = components.new_zeros(len(groups), int(columns.max()) + 1, components.shape[-1])
    stacked[group_of_vector, columns] = bases[edge, :, k]
    basis, strength, _ = torch.linalg.svd(stacked.transpose(1, 2), full_matrices=False)
    keep = strength > 1e-6 * strength.amax(-1, keepdim=True).clamp_min(1e-30)
    basis = basis * keep[:, None, :]  # [group, d_model, k]: the span, zero columns dropped

    g_batch, g_token, g_component = (
        groups // (n_pos * n_axis),
        groups // n_axis % n_pos,
        groups % n_axis,
    )
    role, means = role_means(trace.prompts, components)
    centred = components[g_batch, g_token, g_component] - means[role[g_batch, g_token], g_component]
    removed = torch.einsum("gdk,gk->gd", basis, torch.einsum("gdk,gd->gk", basis, centred))
    deltas[g_batch, g_token, g_component] = -removed
    return deltas


def _rank_within_group(group_of: Tensor) -> Tensor:
    """0, 1, 2, ... for the members of each group, in order."""
    order = group_of.argsort(stable=True)
    counts = torch.bincount(group_of)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(group_of)
    rank[order] = torch.arange(len(group_of), device=group_of.device) - starts[group_of[order]]
    return rank
