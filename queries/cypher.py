"""Users' own Cypher: read-only unless asked, parameters always passed as parameters.

A statement is a *write* when, outside its string literals and comments, it
uses a clause that can change the database (``CREATE``, ``MERGE``, ``SET``,
``DELETE``, ``REMOVE``, ``DROP``, ``COPY``, ``LOAD``, ``CALL``, ...). Writes are
refused unless ``write=True``; on top of that, the CLI opens the embedded
store read-only for a read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from headgraph.queries.selection import QueryError
from headgraph.queries.store import GraphStore

WRITE_CLAUSES = (
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "COPY", "LOAD", "CALL",
    "FOREACH", "ALTER", "INSTALL", "ATTACH", "IMPORT", "EXPORT", "BEGIN", "COMMIT",
    "ROLLBACK", "CHECKPOINT", "GRANT", "REVOKE", "DENY",
)  # fmt: skip
_LITERALS = re.compile(
    r"'(?:[^'\\]|\\.)*'"  # 'single-quoted'
    r'|"(?:[^"\\]|\\.)*"'  # "double-quoted"
    r"|`[^`]*`"  # `quoted names`
    r"|//[^\n]*"  # line comments
    r"|/\*.*?\*/",  # block comments
    re.DOTALL,
)
_WRITE = re.compile(r"\b(" + "|".join(WRITE_CLAUSES) + r")\b", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def write_clause(cypher: str) -> str | None:
    """The first clause that can write, outside literals and comments, or None."""
    match = _WRITE.search(_LITERALS.sub(" ", cypher))
    return match.group(1).upper() if match else None


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
        QueryError: a write without ``write=True``, or the store refused the statement.
    """
    if not cypher.strip():
        raise QueryError("the Cypher statement is empty")
    clause = write_clause(cypher)
    if clause and not write:
        raise QueryError(
            f"the statement uses {clause}, which can change the store; queries are "
            "read-only unless you pass --write"
        )
    try:
        return store.query(cypher, params or {})
    except Exception as error:  # noqa: BLE001 - each backend raises its own error types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QueryError(f"the store refused the statement: {first}") from None
