"""Which singular vectors heads use and who writes them, for many heads at once.

:func:`use_of` turns a set of firings (their sparse sets S and terms) and the
edges into them into, per head, every singular vector its firings use: how many
firings and prompts, the mean term, and the writers (upstream component and
side, the edges into firings using it, their mean weight). The features query
(:mod:`headgraph.queries.features`) answers from it for one head; when a run
finishes, the index (:mod:`headgraph.queries.index_build`) computes it for each
layer's heads and keeps it (``FeatureIndex``: a JSON line per singular vector,
most used first), so the query reads one node and parses the lines it shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from headgraph.queries.arrays import distinct, ranges, tally
from headgraph.queries.packing import pack_text, unpack_text
from headgraph.queries.store import GraphStore

FIRING_COLUMNS = ("head", "key", "prompt", "svs", "terms")
WRITE_COLUMNS = ("key", "upstream", "side", "weight")


@dataclass(frozen=True)
class Use:
    """One singular vector of a head, as its firings use it.

    Attributes:
        k: Its index.
        firings: Firings whose S contains it.
        prompts: Prompts with such a firing.
        mean_term: Its mean term in those firings.
        writers: ``(upstream, side, edges, mean weight)`` of the edges into those
            firings, most edges first (ties by upstream and side).
    """

    k: int
    firings: int
    prompts: int
    mean_term: float
    writers: tuple[tuple[str, str, int, float], ...]


@dataclass(frozen=True)
class HeadUse:
    """A head's firings and the singular vectors they use, most firings first (ties: lower k)."""

    firings: int
    uses: tuple[Use, ...]

    def to_text(self) -> str:
        """The firings on the first line, then a JSON line per singular vector
        ``[k, firings, prompts, mean term, [[upstream, side, edges, mean weight], ...]]``
        (compressed where that makes it shorter: :func:`pack_text`)."""
        lines = [str(self.firings)]
        lines += [
            json.dumps([u.k, u.firings, u.prompts, u.mean_term, u.writers]) for u in self.uses
        ]
        return pack_text("\n".join(lines))

    @classmethod
    def from_text(cls, text: str, top: int | None = None) -> HeadUse:
        """What :meth:`to_text` wrote (only the ``top`` most used singular vectors)."""
        lines = unpack_text(text).split("\n")
        uses = []
        for line in lines[1 : None if top is None else top + 1]:
            k, n, p, term, writers = json.loads(line)
            uses.append(Use(k, n, p, term, tuple((c, s, m, w) for c, s, m, w in writers)))
        return cls(int(lines[0]), tuple(uses))


def use_of(firings: pd.DataFrame, writes: pd.DataFrame) -> dict[str, HeadUse]:
    """Each head's :class:`HeadUse`, from its firings (:data:`FIRING_COLUMNS`) and the
    edges into them (:data:`WRITE_COLUMNS`)."""
    if not len(firings):
        return {}
    heads, head = np.unique(firings["head"].to_numpy(dtype=str), return_inverse=True)
    head = head.reshape(-1)
    sizes = np.fromiter(map(len, firings["svs"]), dtype=np.int64, count=len(firings))
    flat_k = np.concatenate([np.asarray(s, dtype=np.int64) for s in firings["svs"]] or [[]])
    flat_term = np.concatenate([np.asarray(t, dtype=float) for t in firings["terms"]] or [[]])
    owner = np.repeat(np.arange(len(firings)), sizes)  # [(firing, k)] the firing
    prompt = pd.factorize(firings["prompt"])[0]
    n_k = int(flat_k.max()) + 1 if len(flat_k) else 1
    # per (head, k): firings, prompts, terms
    hk = head[owner] * n_k + flat_k
    count = np.bincount(hk, minlength=len(heads) * n_k)
    term_sum = np.bincount(hk, weights=flat_term, minlength=len(heads) * n_k)
    with_prompt = distinct(hk * (int(prompt.max()) + 1) + prompt[owner])
    prompts = np.bincount(with_prompt // (int(prompt.max()) + 1), minlength=len(heads) * n_k)
    writers = _writers(firings["key"], sizes, flat_k, head * n_k, writes)
    out = {}
    firings_per_head = np.bincount(head, minlength=len(heads))
    for h, name in enumerate(heads.tolist()):
        used = np.flatnonzero(count[h * n_k : (h + 1) * n_k])
        uses = [
            Use(
                int(k),
                int(count[h * n_k + k]),
                int(prompts[h * n_k + k]),
                float(term_sum[h * n_k + k] / count[h * n_k + k]),
                tuple(writers.get(h * n_k + k, ())),
            )
            for k in used.tolist()
        ]
        uses.sort(key=lambda u: (-u.firings, u.k))
        out[name] = HeadUse(int(firings_per_head[h]), tuple(uses))
    return out


def _writers(keys, sizes, flat_k, base, writes: pd.DataFrame) -> dict[int, list]:
    """``(head, k)`` code (``base[firing] + k``) -> ``(upstream, side, edges, mean weight)``
    of the edges into the firings using k, most edges first (ties by upstream and side):
    each edge counts for every k in its firing's S (``flat_k``, ``sizes`` per firing of
    ``keys``)."""
    at = pd.Index(keys).get_indexer(writes["key"].to_numpy())
    keep = at >= 0
    at, weight = at[keep], writes["weight"].to_numpy(dtype=float)[keep]
    # a writer is an (upstream, side) pair: each column factorized alone, then the pair's code
    up_ids, up_names = pd.factorize(writes["upstream"].to_numpy()[keep])
    side_ids, side_names = pd.factorize(writes["side"].to_numpy()[keep])
    n_sides = max(len(side_names), 1)
    writer_ids, pairs = pd.factorize(up_ids * n_sides + side_ids)
    pairs = np.asarray(pairs, dtype=np.int64)
    starts, per_edge = np.cumsum(sizes) - sizes, sizes[at]
    edge = np.repeat(np.arange(len(at)), per_edge)  # [(edge, k)] the edge
    k_of = flat_k[ranges(starts[at], per_edge)]
    n_writers = max(len(pairs), 1)
    group = (base[at[edge]] + k_of) * n_writers + writer_ids[edge]
    groups, edges, sums = tally(group, weight[edge])
    if not len(groups):
        return {}
    up_of, side_of = np.divmod(pairs, n_sides)
    ups = np.array([str(u) for u in up_names], dtype=str)[up_of]
    sides = np.array([str(s) for s in side_names], dtype=str)[side_of]
    code, writer = np.divmod(groups, n_writers)
    # by (head, k), then most edges, then upstream and side (as strings sort)
    up_rank, side_rank = _ranks(ups)[writer], _ranks(sides)[writer]
    order = np.lexsort((side_rank, up_rank, -edges, code))
    code, writer, edges, means = code[order], writer[order], edges[order], (sums / edges)[order]
    found = list(zip(ups[writer].tolist(), sides[writer].tolist(), edges.tolist(),
                     means.tolist(), strict=True))  # fmt: skip
    cuts = np.flatnonzero(np.r_[True, code[1:] != code[:-1], True]).tolist()
    return {int(code[a]): found[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)}


def _ranks(names: np.ndarray) -> np.ndarray:
    """Each string's rank in sorted order (equal strings: equal ranks)."""
    return np.unique(names, return_inverse=True)[1].reshape(-1)


FIRINGS = (
    "MATCH (f:Firing) WHERE f.run = $run AND {where} RETURN f.head_name AS head, f.key AS key, "
    "f.prompt AS prompt, f.svs AS svs, f.terms AS terms"
)
WRITES = (
    "MATCH (a)-[s:SIGNAL]->(f:Firing) WHERE f.run = $run AND {where} "
    "RETURN f.key AS key, s.upstream AS upstream, s.side AS side, s.weight AS weight"
)


def use_frames(
    store: GraphStore, run: str, where: str, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The firings that ``where`` (on ``f``) selects and the edges into them, as
    :func:`use_of` takes them."""
    params = {"run": run, **params}
    firings = store.frame(FIRINGS.format(where=where), params, columns=FIRING_COLUMNS)
    writes = store.frame(WRITES.format(where=where), params, columns=WRITE_COLUMNS)
    return firings, writes


def read_use(store: GraphStore, run: str, where: str, params: dict) -> dict[str, HeadUse]:
    """:func:`use_of` the firings that ``where`` (on ``f``) selects, read from the store."""
    return use_of(*use_frames(store, run, where, params))


def read_kept_use(store: GraphStore, run: str, head: str, top: int | None = None) -> HeadUse | None:
    """The head's kept :class:`HeadUse` (its ``top`` most used singular vectors); an empty
    one where the run keeps others but not this head's; None where the run keeps none
    (unfinished, or indexed before)."""
    rows = store.query_if_present(
        "MATCH (u:FeatureIndex) WHERE u.key = $key RETURN u.use AS use", {"key": f"{run}/{head}"}
    )
    if rows:
        return HeadUse.from_text(rows[0]["use"], top)
    any_kept = "MATCH (u:FeatureIndex) WHERE u.run = $run RETURN u.key AS key LIMIT 1"
    return HeadUse(0, ()) if store.query_if_present(any_kept, {"run": run}) else None
