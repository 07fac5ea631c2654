"""headgraph: circuits of transformer attention heads, by sparse attention decomposition.

Everything a notebook needs is importable from here; names load on first use,
so ``import headgraph`` (and the ``headgraph`` command) never pays for torch or
TransformerLens until a model is touched::

    import headgraph as hg

    model = hg.load_model("tiny-ioi")            # or your own HookedTransformer
    traced = hg.trace(model, n_prompts=64)       # firings and edges, in memory
    traced.to_pandas().head()                    # one row per edge
    hg.ingest(model, store="./headgraph-db")     # the same, written to a graph store
    store = hg.open_store("./headgraph-db", read_only=True)
    hg.paths(store, to="1.0", top=5).to_pandas()
    hg.open_run(store).to_networkx()             # the run's circuit as a graph

The API by level:

- models: :func:`load_model`, :class:`Model`
- tracing in memory: :func:`trace` (a :class:`Trace` of batches), :func:`ioi_prompts`,
  :class:`Prompt`, :class:`Seed`, :func:`parse_seeds`, :class:`TraceParams`
- a store: :func:`ingest`, :func:`open_store`, :func:`open_run`
- questions: :func:`paths`, :func:`redundancy`, :func:`features`, :func:`cypher`,
  :func:`compare`, :func:`verify`
- names and errors: :class:`Head`, :class:`Component`, :class:`HeadgraphError`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it (loaded on first access)
_LAZY = {
    # models
    "load_model": "headgraph.ingest.model.loading",
    "Model": "headgraph.ingest.model.adapter",
    # tracing in memory
    "trace": "headgraph.api",
    "Trace": "headgraph.ingest.core.tables",
    "ioi_prompts": "headgraph.ingest.tasks.ioi",
    "read_prompts": "headgraph.ingest.tasks.prompts_file",
    "Prompt": "headgraph.ingest.core.records",
    "Seed": "headgraph.ingest.core.records",
    "parse_seeds": "headgraph.ingest.core.records",
    "TraceParams": "headgraph.ingest.core.params",
    # a store
    "ingest": "headgraph",  # the subpackage headgraph.ingest, which is callable
    "open_store": "headgraph.queries.store",
    "open_run": "headgraph.queries.run",
    # questions
    "paths": "headgraph.queries.paths",
    "redundancy": "headgraph.queries.redundancy",
    "features": "headgraph.queries.features",
    "cypher": "headgraph.api",
    "compare": "headgraph.queries.compare",
    "verify": "headgraph.api",
    # names and errors
    "Head": "headgraph.names",
    "Component": "headgraph.names",
    "HeadgraphError": "headgraph.errors",
    "InputError": "headgraph.errors",
    "ModelError": "headgraph.errors",
    "StoreError": "headgraph.errors",
    "QueryError": "headgraph.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'headgraph' has no attribute {name!r}")
    if name == "ingest":  # importing the subpackage binds it here, as a callable module
        return importlib.import_module("headgraph.ingest")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # what type checkers and editors see
    from headgraph.api import cypher, trace, verify
    from headgraph.errors import HeadgraphError, InputError, ModelError, QueryError, StoreError
    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.core.records import Prompt, Seed, parse_seeds
    from headgraph.ingest.core.tables import Trace
    from headgraph.ingest.model.adapter import Model
    from headgraph.ingest.model.loading import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.ingest.tasks.prompts_file import read_prompts
    from headgraph.names import Component, Head
    from headgraph.queries.compare import compare
    from headgraph.queries.features import features
    from headgraph.queries.paths import paths
    from headgraph.queries.redundancy import redundancy
    from headgraph.queries.run import open_run
    from headgraph.queries.store import open_store
