"""The features a head uses: the singular vectors in its firings' sparse sets, and who writes them.

A head's *features* are the singular vectors of its augmented QK matrix that
carry its firings' scores (the sparse set S of each firing). For each one:
how many of the head's firings use it, its sigma, its mean term, and the
upstream components that write into the head's firings when it is in S, on
the query side, the key side or both. A single singular vector also has
*readers*: the heads whose firings read the output of the head's firings
that used it.

A finished run keeps every head's use of its singular vectors with its index
(:mod:`headgraph.queries.feature_use`), so :func:`features` reads one node.

The vocabulary tokens that project most on each singular vector (through the
embeddings, :mod:`headgraph.ingest.core.vocab`) are computed at ingest and
stored on the ``SingularVector`` nodes, so :func:`feature_tokens` answers from
the store alone, without the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from headgraph.errors import QueryError
from headgraph.queries.feature_use import (
    FIRING_COLUMNS,
    FIRINGS,
    WRITE_COLUMNS,
    WRITES,
    HeadUse,
    Use,
    read_kept_use,
    read_use,
    use_of,
)
from headgraph.queries.selection import check_side, resolve_run
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class Writer:
    """An upstream component that writes into a head's firings while a singular vector is in S.

    Attributes:
        component: Its name.
        side: ``query`` or ``key``.
        firings: Firings it writes into (with the singular vector in S).
        mean_weight: Its mean contribution to them.
    """

    component: str
    side: str
    firings: int
    mean_weight: float


@dataclass(frozen=True)
class Feature:
    """One singular vector of a head, as used by the head's firings in a run.

    Attributes:
        head: ``L.H``.
        index: ``k`` (0 has the largest sigma).
        sigma: Its singular value.
        firings: Firings of the head whose S contains it.
        share_of_firings: ``firings`` over all the head's firings.
        prompts: Prompts with such a firing.
        mean_term: Its mean term sigma (x_d . u)(x_s . v) in those firings.
        writers: Upstream writers, most firings first.
    """

    head: str
    index: int
    sigma: float
    firings: int
    share_of_firings: float
    prompts: int
    mean_term: float
    writers: tuple[Writer, ...]

    @property
    def name(self) -> str:
        return f"{self.head}:{self.index}"


@dataclass(frozen=True)
class FeatureResult:
    """The features of one head in a run, most used first.

    Attributes:
        run, head: What was asked.
        firings: The head's firings in the run.
        features: The most used singular vectors.
        side: The side the writers were read on (``query``, ``key`` or ``any``).
    """

    run: str
    model: str
    head: str
    firings: int
    features: tuple[Feature, ...]
    side: str

    def to_pandas(self):
        """One row per singular vector."""
        from headgraph.queries.tables import features_frame

        return features_frame(self)

    def to_networkx(self):
        """Writers -> singular vectors -> the head, as a ``networkx.DiGraph``."""
        from headgraph.queries.tables import features_graph

        return features_graph(self)


@dataclass(frozen=True)
class SingularVectorReport:
    """One singular vector: its use, writers, readers and prompts.

    Attributes:
        feature: Use and writers (both sides).
        readers: ``(head, side, firings)``: heads reading the output of firings that used it.
        prompt_ids: Prompts in which it was used.
    """

    feature: Feature
    readers: tuple[tuple[str, str, int], ...]
    prompt_ids: tuple[str, ...]


READS = (
    "MATCH (f:Firing)-[s:SIGNAL]->(g:Firing) WHERE f.run = $run AND f.head_name = $head "
    "RETURN f.key AS key, g.head_name AS reader, s.side AS side"
)
SIGMAS = (
    "MATCH (v:SingularVector) WHERE v.model = $model AND v.head_name = $head "
    "RETURN v.`index` AS k, v.sigma AS sigma"
)
HEAD = "f.head_name = $head"


def features(
    store: GraphStore,
    *,
    head: str,
    run: str | None = None,
    side: str = "any",
    top: int = 10,
    index: bool = True,
) -> FeatureResult:
    """The singular vectors ``head`` uses when it fires, most used first.

    Args:
        store: The store to read.
        head: The head (``9.9``, ``L9H9``, ``a9.h9``).
        run: The run (default: the newest).
        side: Writers on the ``query`` side, the ``key`` side, or ``any``.
        top: How many singular vectors.
        index: Read what the run's index keeps for the head (False: read its firings
            and the edges into them, as for a run that keeps nothing).

    Raises:
        QueryError: an unknown run, head or side.
    """
    check_side(side)
    if side == "value":
        raise QueryError(
            "value edges move what a head reads from its source, not through its QK singular "
            "vectors: ask for the query, key or inhibit side"
        )
    ref = resolve_run(store, run)
    name = ref.head(head)
    use = read_kept_use(store, ref.key, name, top) if index else None
    if use is None:
        use = read_use(store, ref.key, HEAD, {"head": name}).get(name, HeadUse(0, ()))
    sigmas = _sigmas(store, ref.model, name)
    found = tuple(_feature(name, use, u, sigmas, side) for u in use.uses[:top])
    return FeatureResult(ref.key, ref.model, name, use.firings, found, side)


def singular_vector(store: GraphStore, *, sv: str, run: str | None = None) -> SingularVectorReport:
    """One singular vector (``9.9:17``): its use, its writers, readers and prompts.

    Raises:
        QueryError: an unknown run, head or index.
    """
    ref = resolve_run(store, run)
    head = ref.head(sv.rpartition(":")[0] or sv)
    sigmas = _sigmas(store, ref.model, head)
    _, index = ref.singular_vector(sv, len(sigmas))
    params = {"run": ref.key, "head": head}
    firings = store.frame(FIRINGS.format(where=HEAD), params, columns=FIRING_COLUMNS)
    writes = store.frame(WRITES.format(where=HEAD), params, columns=WRITE_COLUMNS)
    use = use_of(firings, writes).get(head, HeadUse(0, ()))
    mine = next((u for u in use.uses if u.k == index), Use(index, 0, 0, 0.0, ()))
    keys, prompts = set(), set()
    for key, prompt, svs in zip(firings["key"], firings["prompt"], firings["svs"], strict=True):
        if index in set(svs):
            keys.add(key)
            prompts.add(prompt)
    readers = Counter(
        (row["reader"], row["side"])
        for row in store.query(READS, {"run": ref.key, "head": head})
        if row["key"] in keys
    )
    return SingularVectorReport(
        feature=_feature(head, use, mine, sigmas, "any"),
        readers=tuple(
            (reader, side, n)
            for (reader, side), n in sorted(readers.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        prompt_ids=tuple(sorted(prompts)),
    )


def _sigmas(store: GraphStore, model: str, head: str) -> dict[int, float]:
    return {
        int(r["k"]): float(r["sigma"]) for r in store.query(SIGMAS, {"model": model, "head": head})
    }


def _feature(head: str, use: HeadUse, one: Use, sigmas: dict[int, float], side: str) -> Feature:
    """One singular vector's :class:`Feature`, its writers on ``side`` (or ``any``)."""
    return Feature(
        head=head,
        index=one.k,
        sigma=sigmas.get(one.k, float("nan")),
        firings=one.firings,
        share_of_firings=one.firings / max(use.firings, 1),
        prompts=one.prompts,
        mean_term=one.mean_term,
        writers=tuple(Writer(c, s, n, w) for c, s, n, w in one.writers if side in ("any", s)),
    )


TOKENS = (
    "MATCH (v:SingularVector) WHERE v.model = $model AND v.key IN $keys "
    "RETURN v.head_name AS head, v.`index` AS k, v.{side}_tokens AS tokens, "
    "v.{side}_projections AS projections"
)


def feature_tokens(
    store: GraphStore, model: str, features, *, side: str = "key", n: int = 5
) -> dict[str, list[tuple[str, float]]] | None:
    """``{"9.9:17": [(token, projection), ...]}``: the top ``n`` vocabulary tokens of each
    :class:`Feature` of ``model`` read on ``side``, as stored at ingest.

    Returns None for a store written before tokens were stored (re-ingest it).
    """
    if side not in ("query", "key"):
        raise QueryError(f"side {side!r}: tokens are read on the query or the key side")
    keys = [f"{model}|{f.head}|{f.index}" for f in features]
    if not keys:
        return {}
    rows = store.query(TOKENS.format(side=side), {"model": model, "keys": keys})
    if any(r["tokens"] is None for r in rows):  # an older store's (its columns added empty)
        return None
    return {
        f"{r['head']}:{r['k']}": list(zip(r["tokens"][:n], r["projections"][:n], strict=True))
        for r in rows
    }
