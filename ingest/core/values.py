"""The value side and the inhibition side of a firing (docs/core.md, "Beyond the QK trace").

**Value side.** A head's output at its destination d is ``sum_s A(d,s) (x_s W_V + b_V) W_O``:
linear in the upstream components at each source s. What it matters for is
what its readers take from it: each traced reader of head h at token d reads
h's output along a vector r (an edge's reader, ``w ln_weight / scale`` of the
reader's side, or the logit direction over the final scale for a seed), and
summing the readers gives ``R(d)``. The value signal of the firing (d, s) is
``A(d,s) (x_s W_V + b_V) W_O . R(d)``, which splits over the components at s
exactly as a key side does, along the value direction

    w_v = A(d,s) [W_V (W_O R); b_V . (W_O R)]      in the augmented input space.

Summed over every source the value signals give h's contribution to its
readers, so the value edges explain the weight of the edges above them.

**Inhibition side.** A firing (d, s) wins against a competing source s' (the one
whose win would cost the readers most: :mod:`headgraph.ingest.core.competition`): its
score gap on the sparse set S is ``(x~_s - x~_s') . g`` with
``g = sum_{k in S} sigma_k (x~_d . u_k) v_k``. What is written at s' carries
``-x~_s' . g`` of it; its positive contributors keep the head off s', and they
are the firing's ``inhibit`` edges at s'.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from headgraph.ingest.core.scratch import Scratch


@dataclass(frozen=True)
class ValueWeights:
    """Every head's value and output weights (grouped heads expanded).

    Attributes:
        W_V: ``[layer, head, d_model, d_head]``.
        b_V: ``[layer, head, d_head]``.
        W_O: ``[layer, head, d_head, d_model]``.
    """

    W_V: Tensor
    b_V: Tensor
    W_O: Tensor

    def to(self, device, dtype) -> ValueWeights:
        return ValueWeights(*(t.to(device, dtype) for t in (self.W_V, self.b_V, self.W_O)))


@dataclass(frozen=True)
class ValueReads:
    """A layer's value directions, for the firings whose heads have readers.

    Attributes:
        direction: ``[r, d_model+1]`` each one's value direction at unit attention (the
            value side scales it by the attention; the stakes read every source along it).
        through: ``[r, d_head]`` ``W_O R``: a source's value vector read along it gives
            the same as its input read along ``direction``.
        rows: ``[r]`` which of the layer's firings they are.
    """

    direction: Tensor
    through: Tensor
    rows: Tensor


def value_directions(
    reader: Tensor, attention: Tensor | None, weights: ValueWeights, *, layer: int, head: Tensor
) -> tuple[Tensor, Tensor]:
    """Each firing's value direction ``A(d,s) [W_V (W_O R); b_V . (W_O R)]``.

    Args:
        reader: ``[firing, d_model]`` R, how the readers read the head's ``z W_O`` at d.
        attention: ``[firing]`` A(d, s), or None for 1.
        weights: The model's value weights.
        layer: The firings' layer.
        head: ``[firing]`` their heads.

    Returns:
        ``direction [firing, d_model+1]`` in the augmented input space at the source, and
        ``through [firing, d_head]``, ``W_O R``: what a value vector ``v`` moves along the
        readers is ``v . W_O R`` (at unit attention).
    """
    order = head.argsort(stable=True)  # the firings grouped by head: one product per head
    heads, counts = head[order].unique_consecutive(return_counts=True)
    read = reader[order]  # [firing, d_model] in that order
    W_V, b_V = weights.W_V[layer], weights.b_V[layer]  # [head, d_model, d_head], [head, d_head]
    through = read.new_empty(len(read), weights.W_O.shape[2])  # [firing, d_head]
    direction = read.new_empty(len(read), W_V.shape[1] + 1)  # [firing, d_model+1]
    start = 0
    for h, count in zip(heads.tolist(), counts.tolist(), strict=True):
        at = slice(start, start + count)
        torch.mm(read[at], weights.W_O[layer, h].T, out=through[at])
        torch.mm(through[at], W_V[h].T, out=direction[at, :-1])
        torch.mv(through[at], b_V[h], out=direction[at, -1])
        start += count
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)
    if attention is not None:
        direction *= attention[order, None]
    return direction[back], through[back]


class ReaderTable:
    """How the traced readers read each head's output, summed per (prompt, head, token).

    Readers are added as tracing walks down the layers and taken when the head's
    layer comes. A layer's readers are held as the sparse sums of each addition
    while those are smaller than a dense ``[prompt * head * token, d_model]`` table,
    and in that table once they would outgrow it: memory stays within the edges'
    size for long prompts and within the batch's shape for busy ones, and a busy
    layer's additions are summed in place instead of concatenated.
    """

    def __init__(
        self,
        n_heads: int,
        n_pos: int,
        *,
        n_batch: int | None = None,
        scratch: Scratch | None = None,
    ) -> None:
        """Args:
        n_heads, n_pos: The model's heads per layer and the batch's positions.
        n_batch: The batch's prompts, for the dense table (None: always sparse).
        scratch: Memory for each addition's sums (a new one if None).
        """
        self.n_heads, self.n_pos = n_heads, n_pos
        self.n_keys = None if n_batch is None else n_batch * n_heads * n_pos
        self._parts: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self._dense: dict[int, tuple[Tensor, Tensor]] = {}  # layer -> summed, has
        self._summed = scratch or Scratch()  # each addition's sums, before they are kept

    def _key(self, batch: Tensor, head: Tensor, token: Tensor) -> Tensor:
        return (batch * self.n_heads + head) * self.n_pos + token

    def add(
        self, layer: Tensor, batch: Tensor, head: Tensor, token: Tensor, reader: Tensor
    ) -> None:
        """Add ``reader [n, d_model]`` to heads ``layer.head`` at ``token`` of prompt ``batch``."""
        rows = torch.arange(len(reader), device=reader.device)
        self.add_rows(layer, batch, head, token, rows, reader)

    def add_rows(
        self,
        layer: Tensor,
        batch: Tensor,
        head: Tensor,
        token: Tensor,
        rows: Tensor,
        table: Tensor,
        *,
        weight: Tensor | None = None,
    ) -> None:
        """Add ``table[rows]`` (``table [m, d_model]``, ``rows [n]``), times ``weight [n]`` if
        given, to heads ``layer.head`` at ``token`` of prompt ``batch``, summed here per
        (layer, prompt, head, token) in one sparse product without gathering the
        ``[n, d_model]`` rows: many edges share one reader (every head a firing's side
        reads at one token reads it alike)."""
        if len(rows) == 0:
            return
        key = self._key(batch, head, token)
        span = self.n_keys if self.n_keys is not None else int(key.max()) + 1
        keys, order = (layer * span + key).sort(stable=True)
        unique, counts = keys.unique_consecutive(return_counts=True)
        bounds = counts.new_zeros(len(unique) + 1)
        torch.cumsum(counts, 0, out=bounds[1:])
        values = table.new_ones(len(rows)) if weight is None else weight[order].to(table.dtype)
        with warnings.catch_warnings():  # CSR is "beta"; its product is 3x faster than COO
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            incidence = torch.sparse_csr_tensor(  # [unique, m]: which rows each key sums
                bounds, rows[order], values, (len(unique), len(table)), check_invariants=False
            )
        summed = self._summed.take(len(unique), table.shape[1], like=table)  # [unique, d_model]
        torch.addmm(summed, incidence, table, beta=0, out=summed)  # no new memory to touch
        layers, per_layer = (unique // span).unique_consecutive(return_counts=True)
        for l, keys_l, summed_l in zip(
            layers.tolist(), (unique % span).split(per_layer.tolist()),
            summed.split(per_layer.tolist()), strict=True,
        ):  # fmt: skip
            self._keep(l, keys_l, summed_l)

    def _keep(self, layer: int, keys: Tensor, summed: Tensor) -> None:
        """Hold a layer's summed readers ``summed [n, d_model]`` (a scratch view: copied or
        added, never kept as it is) at ``keys [n]``."""
        held = sum(len(k) for k, _ in self._parts.get(layer, [])) + len(keys)
        if layer not in self._dense and self.n_keys is not None and held >= self.n_keys:
            table = summed.new_zeros(self.n_keys, summed.shape[1])
            has = torch.zeros(self.n_keys, dtype=torch.bool, device=summed.device)
            self._dense[layer] = table, has
            for keys_, summed_ in self._parts.pop(layer, []):
                self._keep(layer, keys_, summed_)
        if layer in self._dense:
            table, has = self._dense[layer]
            table.index_add_(0, keys, summed)
            has[keys] = True
            return
        self._parts.setdefault(layer, []).append((keys, summed.clone()))

    def take(self, layer: int, batch: Tensor, head: Tensor, token: Tensor) -> tuple[Tensor, Tensor]:
        """The summed readers of the given firings' heads at their tokens (the layer's
        readers are dropped).

        Returns:
            ``reader [n, d_model]`` (zero where none) and ``has [n]`` bool.
        """
        want = self._key(batch, head, token)
        if layer in self._dense:
            table, has = self._dense.pop(layer)
            return table[want], has[want]
        parts = self._parts.pop(layer, [])
        if not parts:
            return torch.zeros(len(want), 0), torch.zeros_like(want, dtype=torch.bool)
        keys = torch.cat([k for k, _ in parts])
        vectors = torch.cat([v for _, v in parts])
        unique, inverse = keys.unique(return_inverse=True)
        summed = vectors.new_zeros(len(unique), vectors.shape[1]).index_add_(0, inverse, vectors)
        at = torch.searchsorted(unique, want).clamp_max(len(unique) - 1)
        has = unique[at] == want
        return summed[at] * has[:, None], has
