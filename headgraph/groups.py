"""Consecutive items grouped under a size limit: what a Bolt request or a forward pass holds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def under_limit(sized: Iterable[tuple[Item, int]], limit: int) -> Iterator[list[Item]]:
    """``(item, size)`` pairs as lists of consecutive items whose sizes sum to at most
    ``limit`` (an item over it alone)."""
    group, total = [], 0
    for item, size in sized:
        if group and total + size > limit:
            yield group
            group, total = [], 0
        group.append(item)
        total += size
    if group:
        yield group
