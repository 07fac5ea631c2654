"""The read-only guard reads statements as the database does: no variant of a write, file,
extension or administration keyword runs, and nothing changes."""

from __future__ import annotations

import pytest

from headgraph.queries.cypher import run_cypher
from headgraph.queries.guard import KIND, clauses
from headgraph.queries.selection import QueryError


def variants(word: str) -> list[str]:
    """The keyword as a lexer still reads it: any case, glued to a number, after each kind of
    comment, with Unicode that folds to it."""
    out = [word.lower(), word.upper(), word.capitalize(),
           "".join(c.lower() if i % 2 else c for i, c in enumerate(word)),
           f"1{word}", f"0x1{word.lower()}", f"/*c*/{word}", f"//c\r{word}", f"//c\u2028{word}",
           "".join(chr(ord(c) + 0xFEE0) for c in word)]  # fmt: skip
    if "S" in word:
        out.append(word.lower().replace("s", "\u017f"))  # long s: folds to S
    return out


CASES = [(word, v) for word in KIND for v in variants(word)]


@pytest.mark.parametrize(("word", "variant"), CASES, ids=[f"{w}-{i}" for i, (w, _) in
                                                          enumerate(CASES)])  # fmt: skip
def test_every_variant_of_a_guarded_keyword_is_found(word, variant):
    statement = f"UNWIND [1] AS x WITH x LIMIT 1 {variant} (n:Run {{key: 'x'}}) RETURN x"
    assert word in [w for w, _ in clauses(statement)]


@pytest.mark.parametrize(
    "statement",
    [
        "MATCH (r:Run) RETURN r.key AS set",  # an alias
        "MATCH (r:Run) RETURN r.key AS `delete`",
        "MATCH (n:Create) RETURN n.set, n.load",  # a label, properties
        "RETURN {set: 1, load: 2} AS m",  # map keys
        "MATCH (f:Firing) WHERE f.text = 'CREATE; LOAD FROM x' RETURN f // SET\n",
        "MATCH (n) /* DETACH DELETE n; */ RETURN count(n) AS n;",  # one statement, ; at the end
        "MATCH (n:Settings) RETURN n.dataset",  # keywords inside longer words
    ],
)
def test_reads_pass(statement):
    assert clauses(statement) == []


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("MATCH (n) RETURN n; MATCH (m) RETURN m", "one statement at a time"),
        ("MATCH (n) WHERE n.x = 'open RETURN n", "unterminated ' quote"),
        ("MATCH (n) /* RETURN n", "unterminated /\\* comment"),
    ],
)
def test_malformed_or_several_statements_are_refused(statement, message):
    with pytest.raises(QueryError, match=message):
        clauses(statement)


def _count(store) -> int:
    return run_cypher(store, "MATCH (n) RETURN count(n) AS n")[0]["n"]


def test_no_variant_runs_and_nothing_changes(hand_store):
    before = _count(hand_store)
    for _, variant in CASES:
        statement = f"MATCH (r:Run) WITH r LIMIT 1 {variant} (x:Run {{key: 'y'}}) RETURN r.key"
        with pytest.raises(QueryError, match="read-only unless you pass --write"):
            run_cypher(hand_store, statement)
    assert _count(hand_store) == before


def test_several_statements_never_run_even_when_writing(hand_store):
    before = _count(hand_store)
    with pytest.raises(QueryError, match="one statement at a time"):
        run_cypher(hand_store, "CREATE (:Run {key: 'x'}); MATCH (n:Run) RETURN count(n)",
                   write=True)  # fmt: skip
    assert _count(hand_store) == before


def test_the_file_reading_bypass_is_refused(hand_store, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("root:x:0:0\n")
    for glue in ("1LOAD", "1 LOAD", "1/**/LOAD", "1//\rLOAD"):
        statement = (
            f"UNWIND [1] AS x WITH x LIMIT {glue} FROM '{secret}' (file_format='csv', "
            "delim=':', header=false) RETURN column0, column1 LIMIT 3"
        )
        with pytest.raises(QueryError, match="LOAD \\(file access\\)"):
            run_cypher(hand_store, statement)
    for other in ("WHERE x=1CALL show_tables()", "UNINSTALL httpfs", "UPDATE httpfs",
                  "TERMINATE TRANSACTIONS 'x'", "STOP DATABASE neo4j",
                  "MATCH (n) // x\rDETACH DELETE n"):  # fmt: skip
        with pytest.raises(QueryError, match="read-only unless you pass --write"):
            run_cypher(hand_store, other)


def test_the_embedded_store_itself_refuses_writes_when_read_only(tmp_path):
    from headgraph.queries.store import open_store
    from tests.queries import handmade

    with open_store(tmp_path / "db") as store:
        handmade.write(store)
    with open_store(tmp_path / "db", read_only=True) as reader:
        before = _count(reader)
        with pytest.raises(RuntimeError):  # the database's own refusal, past the guard
            reader.query("CREATE (:Run {key: 'injected'})")
        assert _count(reader) == before


def test_neo4j_reads_run_in_read_sessions(bolt_uri):
    from neo4j import READ_ACCESS

    from headgraph.queries.store import open_store

    with open_store(bolt_uri, read_only=True) as reader:
        asked = []
        session = reader._driver.session
        reader._driver.session = lambda **kw: asked.append(kw) or session(**kw)
        reader.query("MATCH (n) RETURN count(n) AS n")
        assert asked == [{"default_access_mode": READ_ACCESS}]
