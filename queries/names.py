"""How heads and singular vectors are written: ``9.9`` (or ``L9H9``, ``a9.h9``) and ``9.9:17``.

The paper's names, shared by ingest (seeds) and the queries; pure Python.
"""

from __future__ import annotations

import re

_HEAD_FORMS = (
    re.compile(r"^(\d+)\.(\d+)$"),  # 9.9
    re.compile(r"^L(\d+)H(\d+)$", re.IGNORECASE),  # L9H9
    re.compile(r"^a(\d+)\.h(\d+)$", re.IGNORECASE),  # a9.h9
)


def parse_head(text: str) -> tuple[int, int]:
    """Parse a head written ``9.9``, ``L9H9`` or ``a9.h9`` into ``(layer, head)``.

    Raises:
        ValueError: the text is not a head name.
    """
    for form in _HEAD_FORMS:
        match = form.match(text.strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    raise ValueError(f"{text!r} is not a head name: write it as LAYER.HEAD, e.g. 9.9 (or L9H9)")


def parse_singular_vector(text: str) -> tuple[tuple[int, int], int]:
    """Parse ``9.9:17`` (head, then the singular vector's index) into ``((9, 9), 17)``.

    Raises:
        ValueError: the text is not ``HEAD:INDEX``.
    """
    head, sep, index = text.strip().rpartition(":")
    if not sep or not index.isdigit():
        raise ValueError(
            f"{text!r} is not a singular vector: write HEAD:INDEX, e.g. 9.9:17 "
            "(index 0 is the largest singular value)"
        )
    return parse_head(head), int(index)
