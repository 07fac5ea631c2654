"""Building the route index: forked workers build exactly the rows one process does."""

from headgraph.queries import index_build
from headgraph.queries.index_build import index_rows
from headgraph.queries.selection import resolve_run
from headgraph.workers import forked_each, usable_workers


def keyed(tables: dict) -> dict:
    """Each table's rows by key: the order of a layer's nodes follows the store's reads."""
    return {
        name: {row[0]: row for row in zip(*(rows[c] for c in ["key", *rows]), strict=True)}
        for name, rows in tables.items()
    }


def test_workers_build_the_rows_one_process_builds(linear_tiny_store, monkeypatch):
    store = linear_tiny_store  # seeded from the prediction: the logits' edges are read too
    run = resolve_run(store, "tiny")
    rows = index_rows(store, run, workers=1)
    assert rows["Inbound"]["key"] and rows["FeatureIndex"]["key"]
    assert any(key.endswith("/logits@END") for key in rows["Inbound"]["key"])
    alone = keyed(rows)
    shared = []

    def counted(tasks, *, workers):
        shared.append(workers)
        return forked_each(tasks, workers=workers)

    monkeypatch.setattr(index_build, "forked_each", counted)
    assert keyed(index_rows(store, run, workers=2)) == alone
    assert keyed(index_rows(store, run, workers=3)) == alone
    assert shared == [2, 3]
    monkeypatch.setattr(index_build, "SHARED_CPUS", 1)
    assert keyed(index_rows(store, run)) == alone  # a run this small: built here
    monkeypatch.setattr(index_build, "SHARED_ROWS", 0)
    assert keyed(index_rows(store, run)) == alone  # forked, one worker a usable CPU
    monkeypatch.setattr(index_build, "SHARED_CPUS", usable_workers() + 1)
    assert keyed(index_rows(store, run)) == alone  # too few CPUs to share: built here
    assert shared[2:] == [1, usable_workers(), 1]
