"""Users' own Cypher: read-only unless asked, one statement, parameters always passed as
parameters.

What a read may not do (write, read files, manage extensions, administer) is
decided by :mod:`headgraph.queries.guard`, which reads the statement as the
database does; on top of that the store itself is opened read-only for a read
(the embedded store in read-only mode, Neo4j in read sessions).
"""

from __future__ import annotations

import json
import re
from typing import Any

from headgraph.errors import QueryError
from headgraph.queries.guard import check_read_only, clauses
from headgraph.queries.store import GraphStore

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def write_clause(cypher: str) -> str | None:
    """The first clause a read may not use (a write, file access, an extension or an
    administration command), or None."""
    found = clauses(cypher)
    return found[0][0] if found else None


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs as parameters: ``v`` read as JSON (numbers, lists, true, "text"), else text.

    Raises:
        QueryError: a pair without ``=``, or a name that is not an identifier.
    """
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _NAME.match(name):
            raise QueryError(f"parameter {pair!r}: write NAME=VALUE, e.g. head=9.9 or k=3")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params


def run_cypher(
    store: GraphStore,
    cypher: str,
    params: dict[str, Any] | None = None,
    *,
    write: bool = False,
) -> list[dict[str, Any]]:
    """Run a statement and return its rows.

    Args:
        store: The store.
        cypher: One Cypher statement.
        params: Its parameters (``$name`` in the text).
        write: Allow clauses that can change the database.

    Raises:
        QueryError: more than one statement; a write, file access, extension or
            administration command without ``write=True``; or the store refused it.
    """
    if not cypher.strip():
        raise QueryError("the Cypher statement is empty")
    if write:
        clauses(cypher)  # one statement, even when writing: never run some, then refuse
    else:
        check_read_only(cypher)
    try:
        return store.query(cypher, params or {})
    except Exception as error:  # noqa: BLE001 - each backend raises its own error types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QueryError(f"the store refused the statement: {first}") from None
