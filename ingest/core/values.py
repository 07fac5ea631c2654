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

from headgraph.ingest.core.contributions import head_groups
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
    order, groups = head_groups(head)  # one pair of products per head
    read = reader.index_select(0, order)  # [firing, d_model] in that order
    W_V, b_V = weights.W_V[layer], weights.b_V[layer]  # [head, d_model, d_head], [head, d_head]
    through = read.new_empty(len(read), weights.W_O.shape[2])  # [firing, d_head]
    direction = read.new_empty(len(read), W_V.shape[1] + 1)  # [firing, d_model+1]
    for h, at in groups:
        torch.mm(read[at], weights.W_O[layer, h].T, out=through[at])
        torch.mm(through[at], W_V[h].T, out=direction[at, :-1])
        torch.mv(through[at], b_V[h], out=direction[at, -1])
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)
    if attention is not None:
        direction *= attention[order, None]
    return direction.index_select(0, back), through.index_select(0, back)


class ReaderTable:
    """How the traced readers read each head's output, summed per (prompt, head, token).

    Readers are added as tracing walks down the layers and taken when the head's
    layer comes. Each (layer, prompt, head, token) gets a row of one table when its
    first reader comes, and its later readers are summed into that row in place:
    memory grows with the keys read (within the edges' size for long prompts), not
    with the batch's shape, and taking a layer's readers is one gather.
    """

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        n_pos: int,
        *,
        n_batch: int,
        rows: Scratch | None = None,
    ) -> None:
        """Args:
        n_layers, n_heads: The model's layers and heads per layer.
        n_pos, n_batch: The batch's positions and prompts.
        rows: Memory for the table's rows (a new one if None; one kept from batch to
            batch is memory already touched).
        """
        self.n_heads, self.n_pos = n_heads, n_pos
        self.n_keys = n_batch * n_heads * n_pos  # per layer
        self._n_rows = n_layers * self.n_keys
        self._row: Tensor | None = None  # [layer * key] each key's row of the table, -1: none
        self._table: Tensor | None = None  # [capacity, d_model], rows [: self._used] held
        self._used = 0
        self._rows = rows or Scratch()

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
        given, to heads ``layer.head`` at ``token`` of prompt ``batch``, summed into their
        rows in place by one sparse product without gathering the ``[n, d_model]`` rows:
        many edges share one reader (every head a firing's side reads at one token reads
        it alike)."""
        if len(rows) == 0:
            return
        keys = layer * self.n_keys + self._key(batch, head, token)
        row, held = self._rows_of(keys, like=table)  # [n], [held, d_model]
        row, order = row.sort(stable=True)
        bounds = torch.bincount(row, minlength=self._used).cumsum(0)
        bounds = torch.cat([bounds.new_zeros(1), bounds])  # [held + 1]: each row's entries
        values = table.new_ones(len(rows)) if weight is None else weight[order].to(table.dtype)
        with warnings.catch_warnings():  # CSR is "beta"; its product is 3x faster than COO
            warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
            incidence = torch.sparse_csr_tensor(  # [held, m]: which rows each held row sums
                bounds, rows[order], values, (self._used, len(table)), check_invariants=False
            )
        torch.addmm(held, incidence, table, out=held)  # summed straight into the rows

    def _rows_of(self, keys: Tensor, *, like: Tensor) -> tuple[Tensor, Tensor]:
        """``[n]`` the table's row of each key, a new zeroed row for each key not yet held
        (new rows are contiguous, in key order; ``like``: a reader, for the table's
        width and type), and the rows held, ``[held, d_model]``."""
        if self._row is None:
            self._row = torch.full((self._n_rows,), -1, dtype=torch.long, device=keys.device)
        new = keys[self._row[keys] < 0].unique()  # sorted
        start, self._used = self._used, self._used + len(new)
        table = self._grow(self._used, held=start, like=like)
        if len(new):
            self._row[new] = torch.arange(start, self._used, device=keys.device)
            table[start : self._used].zero_()
        return self._row[keys], table[: self._used]

    def _grow(self, rows: int, *, held: int, like: Tensor) -> Tensor:
        """The table, with room for ``rows`` rows (grown at least twofold; the ``held`` rows
        are kept)."""
        table = self._table
        if table is not None and len(table) >= rows:
            return table
        capacity = max(rows, 2 * len(table) if table is not None else 0)
        grown = self._rows.take(capacity, like.shape[1], like=like)
        if table is not None and grown.data_ptr() != table.data_ptr():  # else they stay put
            grown[:held] = table[:held]
        self._table = grown
        return grown

    def take(self, layer: int, batch: Tensor, head: Tensor, token: Tensor) -> tuple[Tensor, Tensor]:
        """The summed readers of the given firings' heads at their tokens (a layer's readers
        are complete once tracing reaches it: readers come from the layers above).

        Returns:
            ``reader [n, d_model]`` (zero where none) and ``has [n]`` bool.
        """
        want = layer * self.n_keys + self._key(batch, head, token)
        if self._row is None or self._table is None:
            return torch.zeros(len(want), 0), torch.zeros_like(want, dtype=torch.bool)
        row = self._row[want]
        has = row >= 0
        reader = self._table.index_select(0, row.clamp_min(0))
        reader.index_fill_(0, (~has).nonzero().squeeze(-1), 0.0)  # rows: faster than a mask
        return reader, has
