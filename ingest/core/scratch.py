"""Reused working memory for the tracer's largest temporaries.

A fresh tensor of tens of megabytes is new memory to the operating system
every time (the allocator maps it, the kernel zeroes each page on first touch),
which on a 2-core CPU costs several times the work written into it. A
:class:`Scratch` hands out views of one buffer per use, grown (at least
twofold) to the largest request and kept, so each layer of a batch writes into
memory the last one already touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


class Scratch:
    """One reusable buffer: what :meth:`take` returns stays valid until the next call."""

    def __init__(self) -> None:
        self._buffer: Tensor | None = None

    def take(self, rows: int, columns: int, *, like: Tensor) -> Tensor:
        """An uninitialised ``[rows, columns]`` view with ``like``'s dtype and device."""
        need = rows * columns
        buffer = self._buffer
        same = buffer is not None and (buffer.dtype, buffer.device) == (like.dtype, like.device)
        if buffer is None or not same or buffer.numel() < need:
            grown = 2 * buffer.numel() if same and buffer is not None else 0  # few regrowths
            buffer = self._buffer = like.new_empty(max(need, grown, 1))
        return buffer[:need].view(rows, columns)


@dataclass(frozen=True)
class Workspace:
    """The tracer's reusable buffers, kept from layer to layer and batch to batch.

    Attributes:
        directions: A layer's read directions, grouped by token.
        products: Their products with each token's upstream outputs.
        gathered: Shared directions gathered before they are grouped.
        reader_rows: The readers' table (:class:`~headgraph.ingest.core.values.ReaderTable`), a
            row per (layer, prompt, head, token) read.
    """

    directions: Scratch = field(default_factory=Scratch)
    products: Scratch = field(default_factory=Scratch)
    gathered: Scratch = field(default_factory=Scratch)
    reader_rows: Scratch = field(default_factory=Scratch)
