# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""How many independent routes carry a head's signal, and which components stand in for others.

Three measures over the target's cone (``docs/queries.md`` defines them):

- **connectivity**: per prompt, the number of node-disjoint routes from the
  input sites (embeddings, MLPs, heads writing where they did not fire; not the
  biases, which carry no input) into the target's firings: a max-flow with unit
  node capacities. 1 means a single point of failure.
- **substitutes**: upstream components that feed the target at the same token
  and side mainly through the same singular vector (the one most often in the
  target's sparse set S when they feed it), like 7.3 and 7.9 into 9.9 in GPT-2.
- **criticality**: for each component, the share of the prompts with a route
  in which removing it (at every token) leaves the target no route at all.

:mod:`headgraph.queries.route_graph` computes the first and the last for many
heads at once; a finished run keeps every head's three measures
(:mod:`headgraph.queries.redundancy_index`), so a query without filters reads them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

import numpy as np

from headgraph.queries.cone import SIDES, load_cone
from headgraph.queries.inbound import prompt_ids
from headgraph.queries.redundancy_index import read_kept
from headgraph.queries.route_graph import Measures, RouteGraph, measure
from headgraph.queries.selection import check_side, resolve_run
from headgraph.queries.store import GraphStore
from headgraph.queries.substitutes import SubstituteGroup, substitute_groups


@dataclass(frozen=True)
class Connectivity:
    """Node-disjoint routes into the target, over the prompts where it fires with inputs.

    Attributes:
        prompts: Prompts measured.
        counts: ``(routes, prompts with that many)``, ascending.
        minimum, median, mean, maximum: Of the per-prompt counts.
        per_prompt: Prompt id -> count.
    """

    prompts: int
    counts: tuple[tuple[int, int], ...]
    minimum: int
    median: float
    mean: float
    maximum: int
    per_prompt: dict[str, int]


@dataclass(frozen=True)
class Critical:
    """A component whose removal cuts every route in some prompts.

    Attributes:
        component: Its name.
        critical_prompts: Prompts where removing it leaves no route.
        share: ``critical_prompts`` over the prompts with a route.
        present_prompts: Prompts where it lies on some route.
    """

    component: str
    critical_prompts: int
    share: float
    present_prompts: int


@dataclass(frozen=True)
class RedundancyResult:
    """The three measures for one head (see the module docstring)."""

    run: str
    target: str
    connectivity: Connectivity
    substitutes: tuple[SubstituteGroup, ...]
    criticality: tuple[Critical, ...]

    def to_pandas(self, table: str = "criticality"):
        """``criticality``, ``substitutes`` or ``connectivity`` as a data frame."""
        from headgraph.queries.tables import redundancy_frame

        return redundancy_frame(self, table)


def redundancy(
    store: GraphStore,
    *,
    to: str,
    run: str | None = None,
    role: str | None = None,
    side: str = "any",
    prompt: str | None = None,
    index: bool = True,
) -> RedundancyResult:
    """Connectivity, substitutes and criticality for head ``to``.

    A finished run keeps every head's measures (over all its prompts, every side
    and role) with its route index, and they are read from there; a filter
    (``role``, ``side``, ``prompt``) or a run without them reads the head's cone.

    Args:
        store: The store to read.
        to: The target head (``9.9``, ``L9H9``, ``a9.h9``).
        run: The run (default: the newest).
        role: Only the target's firings whose destination token has this role.
        side: ``query``, ``key``, ``value``, ``inhibit`` or ``any``: the side of the
            hop into the target.
        prompt: Only this prompt (by id).
        index: Read the measures the run keeps with its index, where there are no
            filters (False: measure the cone, as for a run that keeps none).

    Raises:
        QueryError: an unknown run, head, side or prompt.
    """
    check_side(side)
    ref = resolve_run(store, run)
    target = ref.head(to)
    if index and role is None and side == "any" and prompt is None:
        kept = read_kept(store, ref.key, target)
        if kept is not None:
            measures, groups = kept
            return _result(ref.key, target, measures, prompt_ids(store, ref.key), groups)
    cone = load_cone(store, ref, target, role=role, prompt=prompt)
    into = np.isin(cone.edge_down, list(cone.targets))
    allowed = np.ones(len(into), dtype=bool)
    if side != "any":
        allowed = ~into | (cone.edge_side == SIDES.index(side))
    rows = cone.rows[allowed[cone.rows["edge"].to_numpy()]]
    edges = rows["edge"].to_numpy()
    graph = RouteGraph.build(
        cone.nodes, len(cone.prompt_ids), rows["prompt"].to_numpy(), cone.edge_up[edges],
        cone.edge_down[edges],
    )  # fmt: skip
    measures = measure(graph, [target])[target]
    groups = substitute_groups(cone, allowed & into).get(target, ())
    return _result(ref.key, target, measures, cone.prompt_ids, groups)


def _result(
    run: str,
    target: str,
    measures: Measures,
    ids: list[str],
    substitutes: tuple[SubstituteGroup, ...],
) -> RedundancyResult:
    """The result from a head's :class:`Measures` (prompts by index into ``ids``)."""
    per_prompt = {ids[p]: int(k) for p, k in enumerate(measures.connectivity.tolist()) if k >= 0}
    values = list(per_prompt.values()) or [0]
    connectivity = Connectivity(
        prompts=len(per_prompt),
        counts=tuple(sorted(Counter(per_prompt.values()).items())),
        minimum=min(values),
        median=float(statistics.median(values)),
        mean=statistics.fmean(values),
        maximum=max(values),
        per_prompt=per_prompt,
    )
    n = max(len(per_prompt), 1)
    cut = {
        c: (int(k), int(on))
        for c, k, on in zip(measures.components, measures.critical, measures.present, strict=True)
        if k
    }
    criticality = tuple(
        Critical(c, k, k / n, on)
        for c, (k, on) in sorted(cut.items(), key=lambda x: (-x[1][0], x[0]))
    )
    return RedundancyResult(run, target, connectivity, substitutes, criticality)
