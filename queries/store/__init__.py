"""Graph stores: the embedded LadybugDB store (a folder) or a Neo4j server (Bolt).

``open_store`` picks the backend from the address; both share :class:`GraphStore`
(run bookkeeping, batch writes) and the one schema in :mod:`.schema`.
"""

from __future__ import annotations

import re
from pathlib import Path

from headgraph.errors import StoreError
from headgraph.queries.store.base import GraphStore, Rows

__all__ = ["GraphStore", "Rows", "StoreError", "is_server_address", "open_store"]

# Every scheme the neo4j driver takes, in any case: bolt, bolt+s, bolt+ssc, neo4j, neo4j+s...
_SERVER = re.compile(r"^(?:bolt|neo4j)(?:\+s|\+ssc)?://", re.IGNORECASE)


def is_server_address(target: str) -> bool:
    """Whether ``target`` names a Neo4j server (``neo4j://``, ``bolt+s://``...) not a folder."""
    return bool(_SERVER.match(target))


def open_store(target: str | Path, *, read_only: bool = False, create: bool = True) -> GraphStore:
    """A store by its address: a folder (embedded LadybugDB) or ``neo4j://host:port``.

    Args:
        target: A folder, or a Bolt address (``neo4j://``, ``bolt://``, with ``+s``
            or ``+ssc``, in any case); credentials come from ``NEO4J_USER`` and
            ``NEO4J_PASSWORD``.
        read_only: Open for reading only (the store must exist).
        create: Create an embedded store that does not exist yet (False: refuse).

    Raises:
        StoreError: it cannot be opened (with what to do).
    """
    target = str(target)
    if is_server_address(target):
        scheme, rest = target.split("://", 1)
        from headgraph.queries.store.neo4j_store import Neo4jStore

        return Neo4jStore(f"{scheme.lower()}://{rest}", read_only=read_only)
    from headgraph.queries.store.embedded import EmbeddedStore

    return EmbeddedStore(target, read_only=read_only, create=create)
