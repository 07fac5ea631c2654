"""One error base for everything a user can fix.

Every error that headgraph raises on purpose (bad input, a model it cannot
load or trace, a store it cannot open, a question the store cannot answer) is
a :class:`HeadgraphError`: the CLI prints its message as one line and exits
with status 1. Any other exception is a bug, and keeps its traceback.

The subclasses also derive from the builtin they replaced (``ValueError`` or
``RuntimeError``), so code that caught those goes on working.
"""

from __future__ import annotations


class HeadgraphError(Exception):
    """Base of every error a user can fix; its message says what to do."""


class InputError(HeadgraphError, ValueError):
    """An argument, a prompt, a seed or a threshold that is not valid."""


class ModelError(HeadgraphError, ValueError):
    """A model that cannot be loaded, or that the method does not apply to."""


class StoreError(HeadgraphError, RuntimeError):
    """A store that cannot be opened or written (with what to do)."""


class QueryError(HeadgraphError, ValueError):
    """A question the store cannot answer as asked (unknown run or head, bad Cypher...)."""
