"""What each firing's readers stand to lose, source by source (one layer at a time).

The stakes (:class:`~headgraph.ingest.core.competition.Stakes`) weigh a firing's key
and inhibition sides and pick its competitors: for every source, the loss to the
head's readers if that source's input went to its baseline, from the score it would
move and the value it would then carry (:mod:`headgraph.ingest.core.competition`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from headgraph.ingest.core.activations import Activations
from headgraph.ingest.core.baseline import relative_input
from headgraph.ingest.core.competition import Stakes, harm, reads, score_moves
from headgraph.ingest.core.contributions import signal_directions
from headgraph.ingest.core.sides import LayerFirings, rotated_frame
from headgraph.ingest.core.svd import QKDecomposition
from headgraph.ingest.core.values import ValueReads


def layer_stakes(
    f: LayerFirings,
    acts: Activations,
    qk: QKDecomposition,
    reader: ValueReads | None,
    upstream: tuple[Tensor, Tensor | None],
) -> Stakes | None:
    """What each of a layer's firings' readers stand to lose, source by source
    (:mod:`headgraph.ingest.core.competition`); None without readers or a baseline.

    Args:
        f: The layer's traced firings.
        acts: The batch's activations.
        qk: The QK decompositions.
        reader: The value directions of the firings whose heads have readers
            (:func:`~headgraph.ingest.core.sides.value_reads`).
        upstream: ``(summed, positions)``, both ``[batch, pos, d_model]``: the outputs
            upstream of the layer less their baseline, summed
            (:func:`~headgraph.ingest.core.baseline.upstream_sums`); the positional
            embeddings less theirs where they are added after the norm, else None.
    """
    if reader is None:
        return None
    pattern = acts.pattern[f.batch, f.layer, f.head, f.dest]  # [n, src]
    n, n_src = pattern.shape
    lost = pattern.new_zeros(n, n_src)
    out = pattern.new_full((n,), float("nan"))
    own_value, own_moved, moved_out = out.clone(), out.clone(), out.clone()
    w, rows = reader.direction, reader.rows  # rows in prompt order, as the firings
    if rows.numel() == 0:
        return Stakes(lost, out, own_value, own_moved, moved_out)
    if acts.value_vectors is None:
        raise ValueError("the stakes need the forward pass's value vectors")
    summed, positions = upstream
    ln_weight = None if acts.ln_weight is None else acts.ln_weight[f.layer]
    scale = acts.scale[:, f.layer]
    b, head = f.batch[rows], f.head[rows]
    # the score moves read the key input, positions included; the values, the value input
    relative = relative_input(summed, scale=scale, positions=positions, ln_weight=ln_weight)
    formed = None if f.key_singular_vectors is None else f.score_gradient.index_select(0, rows)
    moves = baseline_moves(f.score_weights[rows], relative, b, qk, layer=f.layer, head=head,
                           rotated=rotated_frame(acts, qk, f.layer, query=False),
                           gradient=formed)  # fmt: skip
    if positions is not None:  # shortformer: positions reach the queries and keys only
        relative = relative_input(summed, scale=scale, ln_weight=ln_weight)
    moved = reads(relative, w[:, :-1], b)  # [rows, src]
    # each source's value as read: its value vector along W_O R (d_head wide, not d_model)
    by_head = acts.value_vectors[:, f.layer].transpose(1, 2)  # [batch, head, pos, d_head]
    values = reads(by_head.flatten(0, 1), reader.through, b * by_head.shape[1] + head)
    a = pattern[rows].to(w.dtype)
    lost_r, out_r = harm(a, values, moves)
    own = torch.arange(len(rows), device=rows.device), f.source[rows]
    lost[rows], out[rows] = lost_r.to(lost.dtype), out_r.to(out.dtype)
    own_value[rows], own_moved[rows] = values[own].to(out.dtype), moved[own].to(out.dtype)
    moved_out[rows] = (a * moved).sum(-1).to(out.dtype)
    return Stakes(lost, out, own_value, own_moved, moved_out)


CHUNK = 256  # rotary firings whose every source's score gradient is turned at once


def baseline_moves(
    score_weights: Tensor,
    relative: Tensor,
    batch: Tensor,
    qk: QKDecomposition,
    *,
    layer: int,
    head: Tensor,
    rotated: tuple | None,
    gradient: Tensor | None = None,
) -> Tensor:
    """``[n, src]`` how far each firing's score would move at each source if that source's
    input went to its baseline, in the softmax's units (the firing's whole score gradient).

    Args:
        score_weights: ``[n, rank]`` ``sigma_k (x~_d . u_k) / attn_scale`` (:class:`LayerFirings`).
        relative: ``[batch, pos, d_model]`` the layer's input less its baseline, as the
            query-key product reads it.
        batch: ``[n]`` each firing's prompt, in order.
        qk: The QK decompositions.
        layer: The firings' layer.
        head: ``[n]``.
        rotated: The key side's rotated-frame arguments
            (:func:`~headgraph.ingest.core.sides.rotated_frame`), or None.
        gradient: Without rotation, the firings' score gradients ``g = V w`` if already
            formed (:attr:`LayerFirings.score_gradient`), ``[n, d_model+1]``.
    """
    if rotated is None:  # g is the same at every source: formed once, read at each
        if gradient is None:
            gradient = signal_directions(score_weights, qk.V[layer], head=head)
        return -reads(relative, gradient[:, :-1], batch)
    n_src = relative.shape[1]
    return torch.cat([  # g turns with the source's position
        score_moves(relative[batch[c]], _score_gradients(
            score_weights[c], qk, layer=layer, head=head[c], rotated=rotated, n_src=n_src))
        for c in torch.arange(len(batch), device=batch.device).split(CHUNK)
    ])  # fmt: skip


def _score_gradients(
    score_weights: Tensor,
    qk: QKDecomposition,
    *,
    layer: int,
    head: Tensor,
    rotated: tuple,
    n_src: int,
) -> Tensor:
    """``[n, src, d_model]`` g, each firing's score gradient with respect to each source's
    input in a rotary model (g turns with the source's position).

    Args:
        score_weights: ``[n, rank]`` ``sigma_k (x~_d . u_k) / attn_scale`` (:class:`LayerFirings`).
        qk: The QK decompositions.
        layer: The firings' layer.
        head: ``[n]``.
        rotated: The key side's rotated-frame arguments
            (:func:`~headgraph.ingest.core.sides.rotated_frame`).
        n_src: Positions.
    """
    every = torch.arange(n_src, device=head.device).repeat(len(head))
    g = signal_directions(
        score_weights.repeat_interleave(n_src, 0), qk.V[layer],
        head=head.repeat_interleave(n_src), token=every, rotated=rotated,
    )  # fmt: skip
    return g[:, :-1].unflatten(0, (len(head), n_src))
