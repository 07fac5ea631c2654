"""The read-only guard: which clauses a user's Cypher statement uses, read as the database reads it.

The database is the first line of defence (the embedded store is opened
read-only, Neo4j reads run in read sessions); this guard is the second, and
the only one against statements that read-only databases still run: reading
files (LadybugDB's ``LOAD FROM``), managing extensions (``INSTALL``,
``UNINSTALL``, ``UPDATE``) and administration (``TERMINATE``, ``STOP``, ``SHOW``...).

A regular expression over the text is not enough: the databases split
``1LOAD`` into a number and ``LOAD``, end a ``//`` comment at ``\\r`` as well as
``\\n``, and fold ``ſet`` to ``SET``. So the statement is split into tokens the
way their lexers do:

- string literals (``'...'``, ``"..."``, with backslash escapes) and quoted
  names (`` `...` ``) are opaque, and so are comments (``//`` to the end of the
  line, which ends at ``\\n``, ``\\r`` or a Unicode line separator; ``/* ... */``);
- a word is a run of letters and underscores; digits end it, so a number glued
  to a keyword does not hide the keyword (``x1set`` is read as ``x`` and ``set``:
  a false alarm at worst, never a miss);
- words are compared after Unicode compatibility folding and upper-casing.

A keyword is a clause unless it stands where only a name can: right after
``AS`` (an alias), after ``.`` (a property) or ``:`` (a label), or before ``:``
(a map key). A statement is one statement: a ``;`` may only end it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from headgraph.errors import QueryError

# Clauses that change the database, by what they do (each refused unless writing).
WRITES = ("CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER", "FOREACH",
          "RENAME", "BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT")  # fmt: skip
FILES = ("LOAD", "COPY", "IMPORT", "EXPORT", "ATTACH", "USE")
EXTENSIONS = ("INSTALL", "UNINSTALL", "UPDATE")
ADMIN = ("CALL", "TERMINATE", "STOP", "START", "SHOW", "GRANT", "REVOKE", "DENY", "ENABLE",
         "DISABLE", "KILL", "SUSPEND")  # fmt: skip
KIND = {word: kind for kind, words in (("a write", WRITES), ("file access", FILES),
        ("extension management", EXTENSIONS), ("an administration command", ADMIN))
        for word in words}  # fmt: skip

_LINE_END = "\n\r\u2028\u2029\x85"
_TOKEN = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"|(?P<quoted>`(?:[^`]|``)*`)"
    rf"|(?P<comment>//[^{_LINE_END}]*|/\*.*?\*/)"
    r"|(?P<word>[^\W\d]+)"  # letters and underscores: digits end a word
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, quoted, other (comments and spaces are dropped)
    text: str

    @property
    def folded(self) -> str:
        """The word as the database compares keywords: compatibility-folded, upper case."""
        return unicodedata.normalize("NFKC", self.text).upper()


def tokens(cypher: str) -> list[Token]:
    """The statement's tokens, without spaces and comments.

    Raises:
        QueryError: an unterminated string, quoted name or block comment.
    """
    out = []
    for match in _TOKEN.finditer(cypher):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind == "other" and text in "'\"`":
            raise QueryError(f"the statement has an unterminated {text} quote")
        if kind == "other" and cypher.startswith("/*", match.start()):
            raise QueryError("the statement has an unterminated /* comment")
        if kind not in ("space", "comment"):
            out.append(Token(kind, text))
    return out


def clauses(cypher: str) -> list[tuple[str, str]]:
    """Every guarded keyword the statement uses as a clause: ``(keyword, kind)``, in order.

    Raises:
        QueryError: more than one statement, or an unterminated literal or comment.
    """
    found = tokens(cypher)
    for i, token in enumerate(found):
        if token.kind == "other" and token.text == ";" and i != len(found) - 1:
            raise QueryError("one statement at a time: a ';' may only end the statement")
    out = []
    for i, token in enumerate(found):
        word = token.folded if token.kind == "word" else ""
        if word not in KIND:
            continue
        before = found[i - 1] if i else None
        after = found[i + 1] if i + 1 < len(found) else None
        as_name = (before is not None and (before.folded == "AS" or before.text in (".", ":"))) or (
            after is not None and after.text == ":"
        )
        if not as_name:
            out.append((word, KIND[word]))
    return out


def check_read_only(cypher: str) -> None:
    """Refuse a statement that could write, read files, manage extensions or administer.

    Raises:
        QueryError: naming the first such clause and what to do.
    """
    found = clauses(cypher)
    if found:
        word, kind = found[0]
        raise QueryError(
            f"the statement uses {word} ({kind}); queries are read-only unless you pass --write"
        )
