"""How heads, components and singular vectors are written: one grammar for every module.

A head is written as papers do, ``9.9`` (layer 9, head 9); ``L9H9`` and
``a9.h9`` are read too. A singular vector is ``9.9:17`` (index 0 has the
largest singular value). The other components that write into the residual
stream are ``embed``, ``pos_embed``, ``mlp3``, ``attn_bias3``, and a head's own
query/key bias ``9.9:qk_bias``. An edge of a circuit is ``UP-HEAD:SIDE``
(``8.6-9.9:query``; ``8.6->9.9:query`` is read too). Pure Python: importing this
module costs nothing.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from headgraph.errors import InputError

_HEAD_FORMS = (
    re.compile(r"^(\d+)\.(\d+)$"),  # 9.9
    re.compile(r"^L(\d+)H(\d+)$", re.IGNORECASE),  # L9H9
    re.compile(r"^a(\d+)\.h(\d+)$", re.IGNORECASE),  # a9.h9
)


@dataclass(frozen=True, order=True)
class Head:
    """An attention head, ``layer.index``; ``str(Head(9, 9)) == "9.9"``."""

    layer: int
    index: int

    @classmethod
    def parse(cls, text: str) -> Head:
        """Read ``9.9``, ``L9H9`` or ``a9.h9``.

        Raises:
            InputError: the text is not a head name.
        """
        for form in _HEAD_FORMS:
            match = form.match(text.strip())
            if match:
                return cls(int(match.group(1)), int(match.group(2)))
        raise InputError(f"{text!r} is not a head name: write it as LAYER.HEAD, e.g. 9.9 (or L9H9)")

    def __str__(self) -> str:
        return f"{self.layer}.{self.index}"


@dataclass(frozen=True, order=True)
class Component:
    """One node that writes into the residual stream (or a head's own QK bias).

    Attributes:
        kind: One of ``embed``, ``pos_embed``, ``head``, ``attn_bias`` (the
            attention-output bias of a layer), ``mlp``, ``qk_bias`` (the
            homogeneous coordinate of a head's augmented QK matrix), or ``logits``
            (the unembedding: what a run seeded from the prediction ends in).
        layer: Layer index, ``-1`` for the embeddings.
        head: Head index for ``head`` and ``qk_bias``, else ``-1``.
    """

    kind: str
    layer: int = -1
    head: int = -1

    @classmethod
    def parse(cls, text: str) -> Component:
        """Read a component name (the inverse of :attr:`name`).

        Raises:
            InputError: not a component name.
        """
        text = text.strip()
        if text in ("embed", "pos_embed", "logits"):
            return cls(text)
        if text.endswith(":qk_bias"):
            h = Head.parse(text.removesuffix(":qk_bias"))
            return cls("qk_bias", h.layer, h.index)
        layered = re.fullmatch(r"(mlp|attn_bias)(\d+)", text)
        if layered:
            return cls(layered.group(1), int(layered.group(2)))
        try:
            h = Head.parse(text)
        except InputError:
            raise InputError(
                f"{text!r} is not a component: name a head (9.9, L9H9), embed, pos_embed, "
                "mlpL, attn_biasL or L.H:qk_bias"
            ) from None
        return cls("head", h.layer, h.index)

    @property
    def name(self) -> str:
        """The paper's name: ``9.9`` for a head, ``mlp3``, ``attn_bias3``, ``9.9:qk_bias``."""
        if self.kind == "head":
            return f"{self.layer}.{self.head}"
        if self.kind == "qk_bias":
            return f"{self.layer}.{self.head}:qk_bias"
        if self.kind in ("mlp", "attn_bias"):
            return f"{self.kind}{self.layer}"
        return self.kind

    def __str__(self) -> str:
        return self.name


def parse_head(text: str) -> tuple[int, int]:
    """``(layer, head)`` of a head written ``9.9``, ``L9H9`` or ``a9.h9``.

    Raises:
        InputError: the text is not a head name.
    """
    h = Head.parse(text)
    return h.layer, h.index


def parse_singular_vector(text: str) -> tuple[tuple[int, int], int]:
    """Parse ``9.9:17`` (head, then the singular vector's index) into ``((9, 9), 17)``.

    Raises:
        InputError: the text is not ``HEAD:INDEX``.
    """
    head, sep, index = text.strip().rpartition(":")
    if not sep or not index.isdigit():
        raise InputError(
            f"{text!r} is not a singular vector: write HEAD:INDEX, e.g. 9.9:17 "
            "(index 0 is the largest singular value)"
        )
    return parse_head(head), int(index)


# The sides of a firing an edge can enter by: where the head looks (query at its
# destination, key at its source), what it moves (value), what keeps it off its competitor.
EDGE_SIDES = ("query", "key", "value", "inhibit")
# UP->HEAD:SIDE, or UP-HEAD:SIDE, which needs no quotes in a shell (``>`` is a redirect there)
_EDGE = re.compile(
    rf"^\s*(?P<up>[^\s>-]+)\s*->?\s*(?P<head>[\w.]+)\s*:\s*(?P<side>{'|'.join(EDGE_SIDES)})\s*$"
)


@dataclass(frozen=True, order=True)
class EdgeKey:
    """An edge of a run's circuit: ``upstream -> head`` on ``side``, at every token."""

    upstream: str
    head: str
    side: str

    @property
    def name(self) -> str:
        return f"{self.upstream}->{self.head}:{self.side}"


def parse_edge(text: str) -> EdgeKey:
    """``8.6->9.9:query`` (or ``8.6-9.9:query``) as an :class:`EdgeKey` (the head canonical,
    ``9.9``).

    Raises:
        InputError: not ``UPSTREAM->HEAD:SIDE`` (query, key, value or inhibit).
    """
    match = _EDGE.match(text)
    if not match:
        raise InputError(
            f"edge {text!r}: write UPSTREAM-HEAD:SIDE, e.g. 8.6-9.9:query "
            "(or '8.6->9.9:query', quoted: > is a redirect in a shell)"
        )
    layer, head = parse_head(match["head"])
    up = match["up"]
    with contextlib.suppress(InputError):  # embed, mlp3, ... stay as they are
        up = str(Head.parse(up))
    return EdgeKey(up, f"{layer}.{head}", match["side"])


def model_name(key: str) -> str:
    """The name in a stored model key ``NAME@FINGERPRINT`` (a key without one is a name)."""
    name, at, fingerprint = key.rpartition("@")
    return name if at and re.fullmatch(r"[0-9a-f]{12}", fingerprint) else key
