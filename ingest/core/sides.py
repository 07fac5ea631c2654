"""Where and along what each side of a layer's traced firings reads the residual stream.

A side of a firing is read at one token along one direction in the augmented
input space; the upstream components' contributions along it are its edges
(:mod:`headgraph.ingest.core.contributions`). The sides:

- ``query``: at the destination d, ``sum_{k in S} eps_k sqrt(sigma_k) u_k``;
- ``key``: at the source s, the same with ``v_k``;
- ``value``: at the source s, along what the head's readers use
  (:mod:`headgraph.ingest.core.values`);
- ``inhibit``: at each competing source s' whose win would cost the readers most,
  along the score gap (:mod:`headgraph.ingest.core.competition`).

Each reading also says what share of its firing's relevance the side hands on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from headgraph.ingest.core.activations import Activations
from headgraph.ingest.core.competition import Stakes, competitors, most_attended
from headgraph.ingest.core.contributions import (
    SharedDirections,
    SignalDirections,
    signal_directions,
    signal_weights,
)
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.relevance import sensitivity
from headgraph.ingest.core.signals import FiringTable
from headgraph.ingest.core.svd import QKDecomposition
from headgraph.ingest.core.values import ValueReads, value_directions


@dataclass(frozen=True)
class LayerFirings:
    """The traced firings of one layer.

    Attributes:
        layer: The layer.
        batch, head, dest, source: ``[n]``.
        attention: ``[n]`` A(d, s).
        weights: ``[n, rank]`` ``eps_k sqrt(sigma_k)`` on S, zero elsewhere.
        score_weights: ``[n, rank]`` ``sigma_k (x~_d . u_k) / attn_scale`` on every singular
            vector: the gradient of the softmax's input ``a(d, s) / attn_scale`` with respect
            to the key side's projections (a score move is the whole score's, not only S's).
        key_singular_vectors: ``[head, d_model+1, rank]`` the layer's V, for
            :attr:`score_gradient`; None in a rotary model.
    """

    layer: int
    batch: Tensor
    head: Tensor
    dest: Tensor
    source: Tensor
    attention: Tensor
    weights: Tensor
    score_weights: Tensor
    key_singular_vectors: Tensor | None = None

    @cached_property
    def score_gradient(self) -> Tensor:
        """``[n, d_model+1]`` ``g = V w`` (``w`` the score weights): the score's gradient in
        the key's augmented input, the same at every source without rotation. Formed once,
        when first read: the stakes' score moves and the inhibition sides both read it."""
        if self.key_singular_vectors is None:
            raise ValueError("the score gradient turns with the source in a rotary model")
        return signal_directions(self.score_weights, self.key_singular_vectors, head=self.head)

    @classmethod
    def of(
        cls,
        layer: int,
        rows: Tensor,
        firings: FiringTable,
        proj_u: Tensor,
        sigma: Tensor,
        *,
        attn_scale: float,
        key_singular_vectors: Tensor | None = None,
    ) -> LayerFirings:
        """The firings ``rows`` of ``layer``, with their signal and score weights.

        Args:
            layer: The layer.
            rows: ``[n]`` rows of ``firings``, all in ``layer``.
            firings: The batch's firings.
            proj_u: ``[batch, layer, head, pos, rank]`` ``x~ . u_k``.
            sigma: ``[layer, head, rank]`` the singular values.
            attn_scale: What the layer divides its scores by before the softmax.
            key_singular_vectors: The layer's V without rotation (see the attribute).
        """
        b, h, d = firings.batch[rows], firings.head[rows], firings.dest[rows]
        sigma_h = sigma[layer, h]  # [n, rank]
        at_dest = proj_u[b, layer, h, d]  # [n, rank]
        selected = firings.selected[rows]
        return cls(
            layer=layer, batch=b, head=h, dest=d, source=firings.source[rows],
            attention=firings.attention[rows], weights=signal_weights(at_dest, selected, sigma_h),
            score_weights=sigma_h * at_dest / attn_scale, key_singular_vectors=key_singular_vectors,
        )  # fmt: skip

    @property
    def at_dest(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(batch, head, dest)``: where each firing's output is read."""
        return self.batch, self.head, self.dest


@dataclass(frozen=True)
class SideReading:
    """One side of some of a layer's firings.

    Attributes:
        firing: ``[m]`` which of the layer's firings (positions in :class:`LayerFirings`).
        token: ``[m]`` the token the side reads.
        direction: ``[m, d_model+1]`` along what, in the augmented input space (on the
            query and key sides held as :class:`SignalDirections`; on the inhibition
            side each firing's score gradient, formed once, as
            :class:`SharedDirections`, or in a rotary model turned per token).
        share: ``[m]`` the share of the firing's relevance the side hands on: on the
            key, value and inhibition sides what the readers stand to lose through it
            (:mod:`headgraph.ingest.core.competition`), where that is known; else, and
            always on the query side, the softmax's sensitivity ``4 A (1 - A)`` (all of
            it on the value side).
        seed_share: ``[m]`` on the value side with stakes, the share of a seed firing's own
            share of the prediction the side hands on (the part of its value that
            differs from the baseline's); None: as ``share``.
    """

    firing: Tensor
    token: Tensor
    direction: Tensor | SignalDirections | SharedDirections
    share: Tensor
    seed_share: Tensor | None = None

    def handed(self, relevance: Tensor, seed: Tensor, *, kept: Tensor | None = None) -> Tensor:
        """``[m]`` the relevance the side hands on, of its firing's ``relevance [firing]`` (of
        which ``seed [firing]`` is the firing's own share as a seed): ``share`` of it, but
        ``seed_share`` of the seed's part where given, and of that ``kept [firing]`` if
        given (what stays lost when the seed alone goes to its baseline)."""
        if self.seed_share is None:
            return relevance[self.firing] * self.share
        own = seed[self.firing]
        alone = own if kept is None else own * kept[self.firing]
        return (relevance[self.firing] - own) * self.share + alone * self.seed_share


def read_side(
    side: str,
    firings: LayerFirings,
    acts: Activations,
    qk: QKDecomposition,
    reader: ValueReads | None,
    stakes: Stakes | None = None,
    *,
    frac: float = TraceParams.edge_frac,
    most: int = TraceParams.competitors,
) -> SideReading | None:
    """Where and along what ``side`` reads, for those of ``firings`` it applies to (None: none).

    Args:
        side: ``query``, ``key``, ``value`` or ``inhibit``.
        firings: The layer's traced firings.
        acts: The batch's activations.
        qk: The QK decompositions.
        reader: The value directions of the firings whose heads have readers
            (:func:`value_reads`), or None without a value side.
        stakes: What the firings' readers stand to lose (:func:`layer_stakes`), or None
            (no value side, or no baseline): the key and value sides then hand on the
            softmax's sensitivity and all of the relevance, and the inhibition side
            takes the most attended other source.
        frac: The edge rule's share, for how many competitors a firing has
            (``TraceParams.edge_frac``).
        most: The most competitors a firing has (``TraceParams.competitors``).
    """
    f, layer = firings, firings.layer
    every = torch.arange(len(f.batch), device=f.batch.device)
    if side in ("query", "key"):
        query = side == "query"
        token = f.dest if query else f.source
        vectors = qk.U if query else qk.V
        rotated = rotated_frame(acts, qk, layer, query=query)
        direction = SignalDirections(f.weights, vectors[layer], f.head, token, rotated)
        share = sensitivity(f.attention)
        if not query and stakes is not None:  # what the key's input at its baseline would cost
            share = torch.where(stakes.known(), stakes.lost_share(f.source), share)
        return SideReading(every, token, direction, share)
    if side == "inhibit":
        firing, rival, share = _competitors(f, acts, stakes, frac, most)
        if firing.numel() == 0:
            return None
        rotated = rotated_frame(acts, qk, layer, query=False)
        if rotated is None and f.key_singular_vectors is not None:  # -g: formed once a firing
            direction = SharedDirections(-f.score_gradient, firing)
        else:
            direction = SignalDirections(-f.score_weights[firing], qk.V[layer], f.head[firing],
                                         rival, rotated)  # fmt: skip
        return SideReading(firing, rival, direction, share)
    if side == "value":
        if reader is None:
            raise ValueError("the value side needs the readers (value_reads)")
        direction, keep = reader.direction, reader.rows
        if keep.numel() == 0:
            return None
        direction = direction * f.attention[keep, None]
        share = torch.ones_like(f.attention[keep])
        if stakes is None:
            return SideReading(keep, f.source[keep], direction, share)
        known = stakes.known()[keep]  # its part of the head's output less the baseline's
        moved = torch.where(known, stakes.moved_share()[keep], share)
        seed = torch.where(known, stakes.seed_share()[keep], share)
        return SideReading(keep, f.source[keep], direction, moved, seed)
    raise ValueError(f"unknown side {side!r}")


def value_reads(
    f: LayerFirings, acts: Activations, reader: tuple[Tensor, Tensor] | None
) -> ValueReads | None:
    """Each firing's value direction at unit attention, along what its head's readers read.

    Args:
        f: The layer's traced firings.
        acts: The batch's activations.
        reader: ``(reader [n, d_model], has [n])`` how each firing's head is read at its
            destination (:meth:`~headgraph.ingest.core.values.ReaderTable.take`), or None
            without a value side.

    Returns:
        The value directions of the firings whose heads have readers, or None without
        readers.
    """
    if reader is None:
        return None
    if acts.values is None:
        raise ValueError("the value side needs the readers and the model's value weights")
    rows = reader[1].nonzero().squeeze(-1)
    if rows.numel() == 0:  # (a layer with no readers holds no reader table either)
        d_model, d_head = acts.values.W_V.shape[2:]
        return ValueReads(f.weights.new_zeros(0, d_model + 1), f.weights.new_zeros(0, d_head), rows)
    direction, through = value_directions(
        _read_as(f, acts, reader[0], rows), None, acts.values, layer=f.layer, head=f.head[rows],
    )  # fmt: skip
    return ValueReads(direction, through, rows)


def _read_as(f: LayerFirings, acts: Activations, reader: Tensor, rows: Tensor) -> Tensor:
    """``[rows, d_model]`` how the readers of firings ``rows`` read their head's ``z W_O``."""
    read = reader.index_select(0, rows).to(f.weights.dtype)
    if acts.head_gain is not None:  # the readers read z W_O through the frozen norm
        read = read * acts.head_gain[f.batch[rows], f.layer, f.dest[rows]]
    return read


def _competitors(
    f: LayerFirings, acts: Activations, stakes: Stakes | None, frac: float, most: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``firing [m]``, ``rival [m]`` and ``share [m]``: where the stakes are known, the fewest
    competitors (at most ``most``) whose harm reaches ``frac`` of the total, each handing
    on its share of what the readers would lose; elsewhere the most attended other
    source, weighted like a key side."""
    known = torch.zeros_like(f.batch, dtype=torch.bool) if stakes is None else stakes.known()
    plain = (~known).nonzero().squeeze(-1)  # by attention: only where the stakes are unknown
    pattern = acts.pattern[f.batch[plain], f.layer, f.head[plain], f.dest[plain]]  # [m, src]
    rival = most_attended(pattern, dest=f.dest[plain], source=f.source[plain])
    plain, rival = plain[rival >= 0], rival[rival >= 0]
    firing, share = plain, sensitivity(f.attention[plain])
    if stakes is not None:
        rows = known.nonzero().squeeze(-1)
        at, rivals = competitors(stakes, rows, dest=f.dest[rows], source=f.source[rows],
                                 frac=frac, most=most)  # fmt: skip
        lost = stakes.lost_share(rivals, rows[at])
        firing = torch.cat([firing, rows[at]])
        rival = torch.cat([rival, rivals])
        share = torch.cat([share, lost.to(share.dtype)])
    order = firing.argsort(stable=True)  # the layer's firings in order, as the other sides
    return firing[order], rival[order], share[order]


def rotated_frame(acts: Activations, qk: QKDecomposition, layer: int, *, query: bool):
    """The rotated-frame arguments of :func:`signal_directions` (None without rotary)."""
    if acts.rotary is None:
        return None
    rotary = acts.rotary.to(acts.normalized.dtype)
    if query:
        return qk.query_factor[layer], qk.query_readout[layer], rotary, layer
    return qk.key_factor[layer], qk.key_readout[layer], rotary, layer
