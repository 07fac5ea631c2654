"""The Neo4j store: any Bolt server speaking Neo4j 5 Cypher, through the official driver.

Credentials come from ``NEO4J_USER`` and ``NEO4J_PASSWORD`` (never the command
line, never logged). Writes are ``UNWIND`` statements generated from the
schema, one transaction per batch, sent in chunks small enough for every
server the tests use. (FalkorDB's experimental Bolt endpoint, the test server
here, crashes on requests over 4 KiB, and on a value over 64 KiB in an answer; a
longer list or text, such as a route index's packed rows, is written empty and
filled by appends.)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from typing import Any, LiteralString, cast

from headgraph.errors import StoreError
from headgraph.groups import under_limit
from headgraph.queries.store.base import GraphStore, Rows
from headgraph.queries.store.schema import NODE, NODES, REL, neo4j_ddl

MAX_REQUEST = 3000  # bytes of row data per statement
STALE_SECONDS = 120  # a run's claim lapses when its writer has not finished a batch for this
CONNECT_TRIES = 3


def node_statement(label: str) -> str:
    props = ", ".join(f"`{p}`: r.`{p}`" for p, _ in NODE[label].properties)
    return f"UNWIND $rows AS r CREATE (:{label} {{{props}}})"


def rel_statement(rel: str, source: str, target: str) -> str:
    props = ", ".join(f"`{p}`: r.`{p}`" for p, _ in REL[rel].properties)
    return (
        f"UNWIND $rows AS r MATCH (a:{source} {{key: r.src}}) MATCH (b:{target} "
        f"{{key: r.dst}}) CREATE (a)-[:{rel} {{{props}}}]->(b)"
    )


def _busy(run: str) -> str:
    return (
        f"run {run!r} is being written by another ingest: wait for it to finish (a rerun then "
        f"resumes nothing), or, if that process died, rerun after {STALE_SECONDS} s"
    )


def redact(text: str) -> str:
    """``text`` with any password in a ``scheme://user:password@host`` address hidden."""
    return re.sub(r"(://[^/@:\s]*):[^/@\s]*@", r"\1:***@", text)


def _text(cypher: str) -> LiteralString:
    """A statement for the driver, whose signature asks for literal strings (against
    injection): ours are built from the schema, and users' go through the Cypher guard."""
    return cast(LiteralString, cypher)


def chunks(rows: Rows, limit: int = MAX_REQUEST, *, rest: list | None = None):
    """Columns as lists of row dicts (``from``/``to`` as ``src``/``dst``), each under ``limit``.

    A row over ``limit`` is written with its longest lists and texts empty until it fits;
    they go to ``rest`` as ``(key, property, value)``, for :func:`appends` to send.
    """
    names = [{"from": "src", "to": "dst"}.get(c, c) for c in rows]

    def sized():
        for values in zip(*rows.values(), strict=True):
            row = dict(zip(names, values, strict=True))
            length = len(json.dumps(row))
            yield _fit(row, limit, rest) if length > limit and rest is not None else (row, length)

    yield from under_limit(sized(), limit)


def _fit(row: dict, limit: int, rest: list) -> tuple[dict, int]:
    """The row with its longest lists and texts emptied into ``rest`` until it is under
    ``limit`` (as JSON); and its new length."""
    row = dict(row)
    long = [k for k, v in row.items() if isinstance(v, list | str) and k != "key"]
    for name in sorted(long, key=lambda k: -len(row[k])):
        if len(json.dumps(row)) <= limit:
            break
        rest.append((row["key"], name, row[name]))
        row[name] = row[name][:0]
    return row, len(json.dumps(row))


def appends(label: str, rest: list, limit: int = MAX_REQUEST):
    """``(statement, parameters)`` that append what :func:`chunks` held back to their
    nodes' lists and texts (``+`` joins both), each under ``limit``."""
    for key, name, value in rest:
        if isinstance(value, str):  # pieces of a text, counted as JSON (escapes included)
            parts = [value[i : i + limit // 2] for i in range(0, len(value), limit // 2)]
        else:
            parts = under_limit(((item, len(json.dumps(item)) + 2) for item in value), limit)
        for part in parts:
            cypher = f"MATCH (n:{label} {{key: $key}}) SET n.`{name}` = n.`{name}` + $part"
            yield cypher, {"key": key, "part": part}


class Neo4jStore(GraphStore):
    """A store on a Bolt server (``neo4j://`` or ``bolt://``)."""

    kind = "neo4j"
    # Each batch also beats the run's heartbeat: a live writer keeps its claim (claim_run).
    APPEND_DONE = "SET r.done_batches = r.done_batches + [$batch], r.heartbeat = timestamp()"
    ON_FINISH = {"writer": ""}  # a finished run releases its writer's claim (claim_run)

    def __init__(self, uri: str, *, read_only: bool = False):
        from neo4j import READ_ACCESS, WRITE_ACCESS, GraphDatabase, exceptions

        shown = redact(uri)  # the address as messages show it: never a password
        user = os.environ.get("NEO4J_USER")
        auth = (user, os.environ.get("NEO4J_PASSWORD", "")) if user else None
        self.read_only = read_only
        self.shared_address = uri  # the shards of a sharded ingest open their own
        # Reads run in read sessions: a server that enforces access modes refuses writes.
        self.access_mode = READ_ACCESS if read_only else WRITE_ACCESS
        try:
            self._driver = GraphDatabase.driver(
                uri, auth=auth, connection_timeout=5, connection_acquisition_timeout=10
            )
        except (ValueError, exceptions.ConfigurationError) as error:
            reason = redact(str(error).splitlines()[0][:120])
            raise StoreError(f"{shown}: not a usable Neo4j address ({reason})") from None
        try:
            for attempt in range(CONNECT_TRIES):  # a server starting, or one slow to reaccept
                try:
                    self._driver.verify_connectivity()
                    break
                except exceptions.ServiceUnavailable:
                    if attempt == CONNECT_TRIES - 1:
                        raise
                    time.sleep(0.5)
        except exceptions.AuthError:
            self._driver.close()
            raise StoreError(
                f"{shown}: authentication failed; set NEO4J_USER and NEO4J_PASSWORD"
            ) from None
        except ValueError as error:  # the driver resolves the address only now
            self._driver.close()
            reason = redact(str(error).splitlines()[0][:120])
            raise StoreError(f"{shown}: not a usable Neo4j address ({reason})") from None
        except (exceptions.ServiceUnavailable, exceptions.DriverError, OSError) as error:
            self._driver.close()
            reason = redact(str(error).splitlines()[0][:120])
            raise StoreError(f"{shown}: cannot reach the Neo4j server ({reason})") from None
        if not read_only:
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        """Key constraints on Neo4j; a plain index where a server refuses constraints."""
        for statement, node in zip(neo4j_ddl(), NODES, strict=True):
            try:
                self.query(statement)
            except Exception:  # noqa: BLE001 - FalkorDB answers every error as "UnknownError"
                with contextlib.suppress(Exception):  # the index may exist already
                    self.query(f"CREATE INDEX FOR (n:{node.name}) ON (n.key)")

    def close(self) -> None:
        self._driver.close()

    def start_run(
        self, run_row: dict[str, Any], model_tables: dict[str, Rows] | None, *, writer: str = ""
    ) -> None:
        """Create the run atomically (``MERGE``): of two ingests starting it at once, one
        creates it and the other is refused. Then the model's nodes, if missing."""
        sets = ", ".join(f"r.`{k}` = ${k}" for k in run_row if k != "key")
        rows = self.query(
            f"MERGE (r:Run {{key: $key}}) ON CREATE SET {sets}, r.writer = $writer, "
            "r.heartbeat = timestamp() RETURN r.writer AS writer",
            {**run_row, "writer": writer},
        )
        if rows[0]["writer"] != writer:
            raise StoreError(_busy(run_row["key"]))
        if model_tables:
            self.write(model_tables)

    def claim_run(self, run: str, writer: str) -> None:
        """Claim the run for ``writer`` unless a live ingest holds it (a heartbeat in the last
        :data:`STALE_SECONDS`). The node is locked (written) before its claim is read, so two
        claims cannot both succeed."""
        rows = self.query(
            "MATCH (r:Run) WHERE r.key = $run SET r.claim_lock = true "
            "WITH r, (coalesce(r.writer, '') IN ['', $writer] OR "
            "coalesce(r.heartbeat, 0) < timestamp() - $stale) AS free "
            "SET r.writer = CASE WHEN free THEN $writer ELSE r.writer END, "
            "r.heartbeat = CASE WHEN free THEN timestamp() ELSE r.heartbeat END "
            "REMOVE r.claim_lock RETURN free",
            {"run": run, "writer": writer, "stale": STALE_SECONDS * 1000},
        )
        if not rows or not rows[0]["free"]:
            raise StoreError(_busy(run))

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._driver.session(default_access_mode=self.access_mode) as session:
            return [record.data() for record in session.run(_text(cypher), params or {})]

    def write(self, tables: dict[str, Rows], *, delete=(), then=()) -> None:
        with self._driver.session() as session, session.begin_transaction() as tx:
            for cypher, params in delete:
                tx.run(_text(cypher), params).consume()
            for table, rows in tables.items():
                name, _, source = table.partition(":")
                if not rows or not next(iter(rows.values())):
                    continue
                if name in NODE:
                    statement = node_statement(name)
                else:
                    pair = next(p for p in REL[name].pairs if not source or p[0] == source)
                    statement = rel_statement(name, *pair)
                rest: list = []
                for chunk in chunks(rows, rest=rest if name in NODE else None):
                    tx.run(_text(statement), rows=chunk).consume()
                for cypher, params in appends(name, rest):  # lists too long for one request
                    tx.run(_text(cypher), params).consume()
            for cypher, params in then:
                tx.run(_text(cypher), params).consume()
            tx.commit()
