"""Ingest: model -> firings -> edges -> a store.

Subpackages: :mod:`.model` (the TransformerLens adapter, loading, tokenizers),
:mod:`.core` (the method's math, pure functions on tensors), :mod:`.tasks`
(prompt generators and prompt files), :mod:`.tiny_ioi` (the bundled model),
:mod:`.causal` (interventions and causal checks), :mod:`.jobs` (trace, ingest
and verify jobs).

The package is also the notebook's ``ingest`` function:
``headgraph.ingest(model, store="./headgraph-db")`` runs :func:`headgraph.api.ingest`
(a name cannot be both a subpackage and a function of ``headgraph``, so the
subpackage is callable).
"""

import sys
import types


class _CallableIngest(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """Trace prompts and write the circuit graph to a store (:func:`headgraph.api.ingest`)."""
        from headgraph.api import ingest

        return ingest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableIngest
