"""Two runs compared: the heads and edges one has and the other lacks, and how the shared ones
changed.

An edge is the explorer's: ``(upstream@role, head@role, side)`` aggregated over
each run's prompts (:func:`headgraph.queries.circuit.circuit`), so a diff draws on
the same picture. For each edge of either run: its share of the prompts and
mean share in each, and its causal effect in each where ``headgraph verify``
measured one. Its status is ``gained`` (only in B), ``lost`` (only in A),
``changed`` (in both, its share of prompts or its effect moved by at least
``min_change``) or ``same``. Typical uses: a task's clean against corrupted
prompts, two tasks on one model, two models on one task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from headgraph.names import Component
from headgraph.queries.circuit import Circuit, CircuitEdge, circuit
from headgraph.queries.effects import effects_by_edge
from headgraph.queries.store import GraphStore

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("gained", "lost", "changed", "same")


@dataclass(frozen=True)
class EdgeChange:
    """One edge in either run. ``None`` where the run lacks it (or has no effect measured)."""

    source: str
    target: str
    side: str
    status: str
    share_a: float | None
    share_b: float | None
    mean_share_a: float | None
    mean_share_b: float | None
    effect_a: float | None
    effect_b: float | None

    @property
    def name(self) -> str:
        return f"{self.source} -{self.side}-> {self.target}"

    @property
    def change(self) -> float:
        """Share of prompts in B minus in A (a missing edge counts as 0)."""
        return (self.share_b or 0.0) - (self.share_a or 0.0)


@dataclass(frozen=True)
class RunDiff:
    """Run B against run A: heads gained and lost, and every edge's change, largest first."""

    run_a: str
    run_b: str
    heads_gained: tuple[str, ...]
    heads_lost: tuple[str, ...]
    heads_kept: tuple[str, ...]
    edges: tuple[EdgeChange, ...]

    def count(self, status: str) -> int:
        return sum(e.status == status for e in self.edges)

    def to_pandas(self) -> pd.DataFrame:
        """One row per edge."""
        from headgraph.frames import records_frame

        return records_frame(list(self.edges), [f for f in EdgeChange.__dataclass_fields__])


def diff(
    store: GraphStore, run_a: str, run_b: str, *, min_prompts: int = 1, min_change: float = 0.05
) -> RunDiff:
    """Compare run B with run A (see the module docstring).

    Args:
        store: The store holding both runs.
        run_a, run_b: The runs.
        min_prompts: Edges seen in fewer prompts than this count as absent.
        min_change: The change in share of prompts (or in effect) that makes an edge
            ``changed``.

    Raises:
        QueryError: an unknown run.
    """
    a, b = (circuit(store, run=r, min_prompts=min_prompts) for r in (run_a, run_b))
    effects = {c.run: effects_by_edge(store, c.run) for c in (a, b)}
    edges_a, edges_b = _edges(a), _edges(b)
    changes = []
    for key in sorted(edges_a.keys() | edges_b.keys()):
        ea, eb = edges_a.get(key), edges_b.get(key)
        effect_a, effect_b = (_effect(effects[c.run], key) if e else None
                              for c, e in ((a, ea), (b, eb)))  # fmt: skip
        if ea is None or eb is None:
            status = "gained" if ea is None else "lost"
        else:
            moved = abs(eb.share_of_prompts - ea.share_of_prompts) >= min_change
            if effect_a is not None and effect_b is not None:
                moved |= abs(effect_b - effect_a) >= min_change
            status = "changed" if moved else "same"
        changes.append(
            EdgeChange(
                *key,
                status,
                ea and ea.share_of_prompts,
                eb and eb.share_of_prompts,
                ea and ea.mean_share,
                eb and eb.mean_share,
                effect_a,
                effect_b,
            )  # fmt: skip
        )
    changes.sort(key=lambda e: (STATUSES.index(e.status), -abs(e.change), e.name))
    heads_a, heads_b = _heads(a), _heads(b)
    return RunDiff(
        a.run, b.run, tuple(sorted(heads_b - heads_a)), tuple(sorted(heads_a - heads_b)),
        tuple(sorted(heads_a & heads_b)), tuple(changes),
    )  # fmt: skip


def _edges(c: Circuit) -> dict[tuple[str, str, str], CircuitEdge]:
    return {(e.source, e.target, e.side): e for e in c.edges}


def _heads(c: Circuit) -> set[str]:
    named = {n.component for n in c.nodes}
    return {n for n in named if Component.parse(n).kind == "head"}


def _effect(effects: dict, key: tuple[str, str, str]) -> float | None:
    source, target, side = key
    found = effects.get((source.partition("@")[0], target.partition("@")[0], side))
    return float(found["difference"]) if found else None
