"""The route index's long text columns, compressed.

The route index keeps arrays (pages of per-prompt rows, edges' totals) and long
texts (each head's feature use, its substitutes, the names of a node's upstream
nodes) in string columns, which both stores hold as they are. Written as ``z:``
then the base64 of their zlib-compressed bytes (level 1, the fastest: on these
columns well under half the size of the base64), the index takes less than half
the room, and about half the time to write. A value is compressed only where that
makes it shorter, so a short one stays as it was.

Text without the mark is read as before (base64 of the raw bytes, or the text
itself): runs indexed by an older headgraph keep working. The mark cannot begin
the base64 of anything (``:`` is not in its alphabet), and plain text that begins
with it is always compressed, so reading never guesses.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from headgraph.errors import StoreError
from headgraph.workers import usable_workers

MARK = "z:"
LEVEL = 1  # zlib's fastest: 100-120 MB/s here, to 35-50% of the bytes (6: 3-5x slower, 5-15% less)
SMALL = 256  # bytes below which a value is left as it is (compressing cannot gain much)


def pack_bytes(raw: bytes) -> str:
    """``raw`` as text: base64, or the mark and the base64 of its compressed bytes."""
    if len(raw) >= SMALL:
        deflated = zlib.compress(raw, LEVEL)
        if len(MARK) + _b64_length(len(deflated)) < _b64_length(len(raw)):
            return MARK + base64.b64encode(deflated).decode("ascii")
    return base64.b64encode(raw).decode("ascii")


def pack_all(raws: Sequence[bytes]) -> list[str]:
    """:func:`pack_bytes` of each, on a thread per usable CPU (up to 4): zlib lets go of
    Python's lock while it compresses, so the threads share the work."""
    workers = min(usable_workers(), 4, len(raws) // 64)
    if workers <= 1:
        return [pack_bytes(raw) for raw in raws]
    step = -(-len(raws) // workers)
    parts = [raws[i : i + step] for i in range(0, len(raws), step)]
    with ThreadPoolExecutor(workers) as pool:
        return [text for part in pool.map(_pack_part, parts) for text in part]


def _pack_part(raws: Sequence[bytes]) -> list[str]:
    return [pack_bytes(raw) for raw in raws]


def unpack_bytes(text: str) -> bytes:
    """The bytes :func:`pack_bytes` (or an older headgraph's plain base64) wrote."""
    if not text.startswith(MARK):
        return base64.b64decode(text)
    return _inflate(text)


def pack_text(text: str) -> str:
    """``text`` as it is, or the mark and the base64 of its compressed UTF-8."""
    marked = text.startswith(MARK)
    if len(text) < SMALL and not marked:
        return text
    deflated = zlib.compress(text.encode(), LEVEL)
    if marked or len(MARK) + _b64_length(len(deflated)) < len(text):
        return MARK + base64.b64encode(deflated).decode("ascii")
    return text


def unpack_text(text: str) -> str:
    """The text :func:`pack_text` (or an older headgraph, as it was) wrote."""
    if not text.startswith(MARK):
        return text
    return _inflate(text).decode()


def _b64_length(n: int) -> int:
    """The length of ``n`` bytes in base64."""
    return 4 * ((n + 2) // 3)


def _inflate(text: str) -> bytes:
    try:
        return zlib.decompress(base64.b64decode(text[len(MARK) :]))
    except (binascii.Error, zlib.error) as error:
        raise StoreError(
            f"a route index value is damaged ({error}): rebuild the run's index with "
            "`headgraph index --run RUN`"
        ) from None
