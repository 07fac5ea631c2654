"""Substitute groups from a hand-built cone: members by most prompts, ties by component."""

import numpy as np
import pandas as pd

from headgraph.queries.cone import build_cone
from headgraph.queries.selection import RunRef
from headgraph.queries.sparse_sets import row_sparse_sets
from headgraph.queries.substitutes import substitute_groups

RUN = RunRef(key="r", model="m", prompts=2, status="complete", n_layers=2, n_heads=3)


def cone_into_1_0():
    """1.0 fires END -> A in p1 and p2 (S = [0]); 0.1 and 0.0 feed its query side at END in
    both prompts, 0.2 only in p1, so 0.0 and 0.1 tie on prompts."""
    feeds = [("p1", "0.1"), ("p1", "0.2"), ("p1", "0.0"), ("p2", "0.1"), ("p2", "0.0")]
    rows = [
        {"prompt": p, "up": up, "down": "1.0", "side": "query", "dest_role": "END",
         "source_role": "A", "up_role": "END", "token": 2, "dest": 2, "source": 0,
         "site": False, "share": 0.3, "weight": 1.0, "relevance": 0.0}
        for p, up in feeds
    ]  # fmt: skip
    firings = pd.DataFrame(
        {"prompt": ["p1", "p2"], "head": ["1.0", "1.0"], "dest": [2, 2], "source": [0, 0],
         "svs": [[0], [0]]}
    )  # fmt: skip
    return build_cone(pd.DataFrame(rows), firings, run=RUN, target=None)


def test_members_most_prompts_first_then_by_component():
    cone = cone_into_1_0()
    into = np.ones(len(cone.edge_up), dtype=bool)
    for sparse_sets in (None, row_sparse_sets(cone)):  # looked up, or given
        (group,) = substitute_groups(cone, into, sparse_sets)["1.0"]
        assert (group.side, group.singular_vector) == ("query", 0)
        assert group.members == (("0.0@END", 2), ("0.1@END", 2), ("0.2@END", 1))
        assert (group.prompts_any, group.prompts_all) == (2, 1)
