"""Where and along what each side of a layer's traced firings reads the residual stream.

A side of a firing is read at one token along one direction in the augmented
input space; the upstream components' contributions along it are its edges
(:mod:`headgraph.ingest.core.contributions`). The sides:

- ``query``: at the destination d, ``sum_{k in S} eps_k sqrt(sigma_k) u_k``;
- ``key``: at the source s, the same with ``v_k``;
- ``value``: at the source s, along what the head's readers use
  (:mod:`headgraph.ingest.core.values`);
- ``inhibit``: at the strongest competing source s', along the score gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from headgraph.ingest.core.activations import Activations
from headgraph.ingest.core.contributions import signal_directions
from headgraph.ingest.core.svd import QKDecomposition
from headgraph.ingest.core.values import ReaderTable, competitors, value_directions


@dataclass(frozen=True)
class LayerFirings:
    """The traced firings of one layer.

    Attributes:
        layer: The layer.
        batch, head, dest, source: ``[n]``.
        attention: ``[n]`` A(d, s).
        weights: ``[n, rank]`` ``eps_k sqrt(sigma_k)`` on S, zero elsewhere.
        score_weights: ``[n, rank]`` ``sigma_k (x~_d . u_k)`` on S, zero elsewhere: the
            score's gradient with respect to the key side's projections.
    """

    layer: int
    batch: Tensor
    head: Tensor
    dest: Tensor
    source: Tensor
    attention: Tensor
    weights: Tensor
    score_weights: Tensor


@dataclass(frozen=True)
class SideReading:
    """One side of some of a layer's firings.

    Attributes:
        firing: ``[m]`` which of the layer's firings (positions in :class:`LayerFirings`).
        token: ``[m]`` the token the side reads.
        direction: ``[m, d_model+1]`` along what, in the augmented input space.
    """

    firing: Tensor
    token: Tensor
    direction: Tensor


def read_side(
    side: str,
    firings: LayerFirings,
    acts: Activations,
    qk: QKDecomposition,
    readers: ReaderTable | None,
) -> SideReading | None:
    """Where and along what ``side`` reads, for those of ``firings`` it applies to (None: none)."""
    f, layer = firings, firings.layer
    every = torch.arange(len(f.batch), device=f.batch.device)
    if side in ("query", "key"):
        query = side == "query"
        token = f.dest if query else f.source
        vectors = qk.U if query else qk.V
        rotated = _rotated(acts, qk, layer, query=query)
        direction = signal_directions(
            f.weights, vectors[layer], head=f.head, token=token, rotated=rotated
        )
        return SideReading(every, token, direction)
    if side == "inhibit":
        pattern = acts.pattern[f.batch, layer, f.head, f.dest]  # [n, src]
        rival = competitors(pattern, dest=f.dest, source=f.source)
        keep = (rival >= 0).nonzero().squeeze(-1)
        if keep.numel() == 0:
            return None
        direction = signal_directions(
            -f.score_weights[keep], qk.V[layer], head=f.head[keep], token=rival[keep],
            rotated=_rotated(acts, qk, layer, query=False),
        )  # fmt: skip
        return SideReading(keep, rival[keep], direction)
    if side == "value":
        if readers is None or acts.values is None:
            raise ValueError("the value side needs the readers and the model's value weights")
        reader, has = readers.take(layer, f.batch, f.head, f.dest)
        keep = has.nonzero().squeeze(-1)
        if keep.numel() == 0:
            return None
        reader = reader[keep].to(f.weights.dtype)
        if acts.head_gain is not None:  # the readers read z W_O through the frozen norm
            reader = reader * acts.head_gain[f.batch[keep], layer, f.dest[keep]]
        direction = value_directions(
            reader, f.attention[keep], acts.values, layer=layer, head=f.head[keep]
        )
        return SideReading(keep, f.source[keep], direction)
    raise ValueError(f"unknown side {side!r}")


def _rotated(acts: Activations, qk: QKDecomposition, layer: int, *, query: bool):
    """The rotated-frame arguments of :func:`signal_directions` (None without rotary)."""
    if acts.rotary is None:
        return None
    rotary = acts.rotary.to(acts.normalized.dtype)
    if query:
        return qk.query_factor[layer], qk.query_readout[layer], rotary, layer
    return qk.key_factor[layer], qk.key_readout[layer], rotary, layer
