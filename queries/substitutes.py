"""Substitutes: components that feed a head at one token and side through the same
main singular vector (like 7.3 and 7.9 into 9.9 in GPT-2).

A *unit* is an upstream component at a token role feeding the head on one side
(``7.3@END``, query). Its main singular vector is the one most often in the
head's sparse set S, over the prompts where the unit feeds it (ties: the
lowest index). Units of one head, side, role and main singular vector form a
group; a group of two or more is a set of substitutes. All heads of a cone are
grouped in one pass (the ingest keeps every head's groups at the end of a run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headgraph.queries.arrays import counted_rows, ranges
from headgraph.queries.cone import LOGITS, SIDES, Cone, is_constant
from headgraph.queries.sparse_sets import row_sparse_sets


@dataclass(frozen=True)
class SubstituteGroup:
    """Components feeding the target at one token and side through the same main singular vector.

    Attributes:
        side: ``query``, ``key``, ``value`` or ``inhibit``.
        singular_vector: The target's singular vector that most often carries each
            member's signal (in the target's S when the member feeds it).
        members: ``(component@role, prompts)``, most prompts first.
        prompts_any: Prompts in which at least one member feeds the target.
        prompts_all: Prompts in which every member does.
    """

    side: str
    singular_vector: int
    members: tuple[tuple[str, int], ...]
    prompts_any: int
    prompts_all: int


def substitute_groups(
    cone: Cone, into: np.ndarray, sparse_sets: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, tuple[SubstituteGroup, ...]]:
    """Each head's substitute groups, most prompts first, from the cone's edges ``into``
    (an ``[edge]`` mask of edges into the heads' firings).

    Args:
        cone: The cone.
        into: Which edges to group (those into the heads asked about).
        sparse_sets: The S of the firing each of the cone's rows enters, as
            :func:`~headgraph.queries.sparse_sets.row_sparse_sets` gives them (looked
            up for the rows used when not given).
    """
    edge = cone.rows["edge"].to_numpy()
    components, component = np.unique([n.component for n in cone.nodes], return_inverse=True)
    roles, role = np.unique([n.role for n in cone.nodes], return_inverse=True)
    constant = np.array([is_constant(c) for c in components], dtype=bool)[component]
    up, down = cone.edge_up[edge], cone.edge_down[edge]  # [row] node ids
    picked = np.flatnonzero(into[edge] & ~constant[up] & (components[component[down]] != LOGITS))
    if not len(picked):
        return {}
    counts, flat = _sets_of(cone, picked, sparse_sets)
    # a unit: (head, upstream component, its role, side), an id per picked row
    fields = (component[down[picked]], component[up[picked]], role[up[picked]])
    code = np.ravel_multi_index(
        (*fields, cone.edge_side[edge[picked]]),
        (len(components), len(components), len(roles), len(SIDES)),
    )
    codes, unit = np.unique(code, return_inverse=True)
    unit = unit.reshape(-1)
    prompt = cone.rows["prompt"].to_numpy()[picked]
    # prompts per (unit, k), each prompt once; a unit's main k: most prompts, then lowest
    triples = counted_rows(np.repeat(unit, counts), np.repeat(prompt, counts), flat)[0]
    pairs, times = counted_rows(triples[0], triples[2])
    order = np.lexsort((pairs[1], -times, pairs[0]))
    first = order[np.r_[True, np.diff(pairs[0][order]) != 0]]
    main = np.full(len(codes), -1, dtype=np.int64)
    main[pairs[0][first]] = pairs[1][first]
    heads, ups, up_roles, sides = np.unravel_index(
        codes, (len(components), len(components), len(roles), len(SIDES))
    )
    # a group: (head, side, role, main k); its members' prompts, each (unit, prompt) once
    group_code = np.ravel_multi_index(
        (heads, sides, up_roles, np.maximum(main, 0)),
        (len(components), len(SIDES), len(roles), int(main.max()) + 1),
    )
    group_code[main < 0] = -1
    by_unit = counted_rows(unit, prompt)[0]  # [2, (unit, prompt)]
    size = np.bincount(by_unit[0], minlength=len(codes))  # a unit's prompts
    groups, group = np.unique(group_code, return_inverse=True)
    group = group.reshape(-1)
    members = np.bincount(group, minlength=len(groups))
    wanted = (members >= 2) & (groups >= 0)
    (g_of, _), times = counted_rows(group[by_unit[0]], by_unit[1])
    any_ = np.bincount(g_of, minlength=len(groups))
    all_ = np.bincount(g_of[times == members[g_of]], minlength=len(groups))
    # each group's members by most prompts, then component (a group shares side and role;
    # components are sorted names, so their ids order as the names do)
    by_group = np.lexsort((ups, -size, group))
    bounds = np.searchsorted(group[by_group], np.arange(len(groups) + 1))
    labels = [f"{components[u]}@{roles[r]}" for u, r in zip(ups, up_roles, strict=True)]
    sizes = size.tolist()
    out: dict[str, list[SubstituteGroup]] = {}
    for g in np.flatnonzero(wanted).tolist():
        ranked = by_group[bounds[g] : bounds[g + 1]].tolist()
        u0 = ranked[0]  # head, side and main singular vector: the group's own
        out.setdefault(str(components[heads[u0]]), []).append(
            SubstituteGroup(
                side=SIDES[int(sides[u0])],
                singular_vector=int(main[u0]),
                members=tuple((labels[u], sizes[u]) for u in ranked),
                prompts_any=int(any_[g]),
                prompts_all=int(all_[g]),
            )
        )
    return {
        head: tuple(sorted(found, key=lambda g: (-g.prompts_any, g.side, g.members)))
        for head, found in out.items()
    }


def _sets_of(cone: Cone, rows: np.ndarray, sparse_sets) -> tuple[np.ndarray, np.ndarray]:
    """``(counts [row], flat)``: the S of the firing each of ``rows`` enters."""
    if sparse_sets is not None:
        counts, flat = sparse_sets
        starts, picked = (np.cumsum(counts) - counts)[rows], counts[rows]
        return picked, flat[ranges(starts, picked)]
    return row_sparse_sets(cone, rows)
