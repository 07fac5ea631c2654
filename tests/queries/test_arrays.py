"""Array helpers: ``tally`` against numpy's own counting, through both of its ways."""

import numpy as np
import pytest

from headgraph.queries.arrays import tally


@pytest.mark.parametrize("span", [50, 10**9], ids=["counted in place", "sorted"])
def test_tally_counts_and_sums_each_distinct_code(span):
    rng = np.random.default_rng(1)
    codes = rng.choice(rng.integers(0, span, 300), size=5000)  # repeats
    weights = rng.normal(size=5000)
    found, counts, sums = tally(codes, weights)
    expected, inverse, expected_counts = np.unique(codes, return_inverse=True, return_counts=True)
    assert found.tolist() == expected.tolist()
    assert counts.tolist() == expected_counts.tolist()
    assert sums is not None
    assert np.allclose(sums, [weights[inverse == i].sum() for i in range(len(expected))])
    assert tally(codes)[2] is None
    assert tally(codes)[1].tolist() == expected_counts.tolist()


def test_tally_of_nothing_is_empty():
    found, counts, sums = tally(np.zeros(0, np.int64), np.zeros(0))
    assert (len(found), len(counts), len(sums if sums is not None else [1])) == (0, 0, 0)
