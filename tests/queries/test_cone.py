"""A hand-built cone: one row per edge and prompt, the strongest copy's, relevance summed."""

import pandas as pd
import pytest

from headgraph.queries.cone import build_cone
from headgraph.queries.selection import RunRef

RUN = RunRef(key="r", model="m", prompts=2, status="complete", n_layers=2, n_heads=3)


def edge_rows(copies):
    """0.1 -> 1.0 on the query side at END, one row per (prompt, source, share, weight,
    relevance): 1.0 firing from END to several sources is several copies of the edge."""
    return pd.DataFrame(
        [
            {"prompt": p, "up": "0.1", "down": "1.0", "side": "query", "dest_role": "END",
             "source_role": f"S{source}", "up_role": "END", "token": 3, "dest": 3,
             "source": source, "site": False, "share": share, "weight": weight,
             "relevance": relevance}
            for p, source, share, weight, relevance in copies
        ]
    )  # fmt: skip


def firings_of(copies):
    return pd.DataFrame(
        {"prompt": [c[0] for c in copies], "head": ["1.0"] * len(copies),
         "dest": [3] * len(copies), "source": [c[1] for c in copies],
         "svs": [[c[1]] for c in copies]}
    )  # fmt: skip


@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "reversed"])
def test_each_prompt_keeps_its_strongest_copy_and_sums_relevance(reverse):
    copies = [
        ("p1", 0, 0.2, 1.0, 0.01),
        ("p1", 1, 0.5, 0.5, 0.02),  # p1's strongest share
        ("p1", 2, 0.5, 0.9, 0.04),  # tied share, higher weight: kept
        ("p2", 0, 0.3, 1.0, 0.08),  # alone in p2
    ]
    rows = copies[::-1] if reverse else copies
    cone = build_cone(edge_rows(rows), firings_of(rows), run=RUN, target=None)
    assert len(cone.edge_up) == 1
    kept = cone.rows.to_dict("list")
    assert kept["prompt"] == [0, 1]  # p1, p2
    assert kept["share"] == [0.5, 0.3]
    assert kept["weight"] == [0.9, 1.0]
    assert kept["source"] == [2, 0]
    assert kept["relevance"] == pytest.approx([0.07, 0.08])
    assert cone.singular_vectors(0, [0, 1]) == (0, 2)  # one firing each: by index


def test_one_copy_a_prompt_rows_by_edge_then_prompt():
    rows = [("p2", 0, 0.3, 1.0, 0.0), ("p1", 1, 0.4, 1.0, 0.0)]
    cone = build_cone(edge_rows(rows), firings_of(rows), run=RUN, target=None)
    assert cone.rows["prompt"].tolist() == [0, 1]
    assert cone.rows["source"].tolist() == [1, 0]
