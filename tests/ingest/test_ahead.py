"""The next batch traced in a thread while this one is written (``one_ahead``)."""

import threading
import time
import weakref
from contextlib import closing

import pytest

from headgraph.ingest.jobs import ingest_job
from headgraph.ingest.jobs.ahead import one_ahead
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.store import open_store
from tests.ingest.test_shards import same_graph
from tests.queries.test_store import signature


class Item:
    def __init__(self, n: int) -> None:
        self.n = n


def producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "headgraph-one-ahead"]


@pytest.mark.parametrize("enabled", [True, False])
def test_items_come_in_order_and_an_error_where_it_was_raised(enabled):
    def items():
        yield from (Item(n) for n in range(3))
        raise KeyError("the fourth item")

    got = []
    with pytest.raises(KeyError, match="the fourth item"):
        for item in one_ahead(items(), enabled=enabled):
            got.append(item.n)
    assert got == [0, 1, 2]
    assert producer_threads() == []


def test_the_next_item_is_produced_while_this_one_is_used_and_no_further():
    taken: list[int] = []
    alive: list[weakref.ref] = []
    seen_at_start: list[tuple[int, list[bool]]] = []
    second_started = threading.Event()
    where: list[str] = []

    def items():
        for n in range(6):
            seen_at_start.append((len(taken), [r() is not None for r in alive]))
            if n == 1:
                second_started.set()
            where.append(threading.current_thread().name)
            item = Item(n)
            alive.append(weakref.ref(item))
            yield item
            del item

    for item in one_ahead(items()):
        taken.append(item.n)
        if item.n == 0:  # item 1 is traced while item 0 is still being used
            assert second_started.wait(10), "the next item was not produced meanwhile"
        time.sleep(0.02)  # time for a producer that ran further ahead to show it
        del item
    assert taken == list(range(6))
    assert set(where) == {"headgraph-one-ahead"}
    for n, (taken_then, alive_then) in enumerate(seen_at_start):
        # item n starts once item n - 1 is handed over, never earlier ...
        assert taken_then >= n, n
        # ... and by then no item before n - 1 is held by anyone (two alive at most)
        assert not any(alive_then[: max(n - 1, 0)]), n


def test_stopping_early_stops_the_producer_after_the_item_it_is_on():
    produced: list[int] = []

    def items():
        for n in range(100):
            produced.append(n)
            yield Item(n)

    with closing(one_ahead(items())) as ahead:
        for item in ahead:
            if item.n == 2:
                break
    assert producer_threads() == []
    assert produced[-1] <= 3  # one item ahead, no more


@pytest.mark.slow
def test_an_ingest_traced_ahead_equals_one_traced_in_turn(tmp_path, monkeypatch):
    model = load_model("tiny-ioi")
    prompts = task_prompts(model, 48, seed=7)
    traced_batches = ingest_job.traced_batches
    graphs, threads = {}, {}
    for cpus in (1, 2):
        names: list[str] = []

        def recording(*args, names=names):
            for delivered in traced_batches(*args):
                names.append(threading.current_thread().name)
                yield delivered

        monkeypatch.setattr(ingest_job, "traced_batches", recording)
        monkeypatch.setattr(ingest_job, "usable_workers", lambda cpus=cpus: cpus)
        with open_store(tmp_path / f"cpus{cpus}") as store:
            ingest(model, prompts, store=store, run="r", seeds=default_seeds(model), batch_size=8)
            graphs[cpus], threads[cpus] = signature(store, "r"), set(names)
    assert threads == {1: {"MainThread"}, 2: {"headgraph-one-ahead"}}
    same_graph(graphs[1], graphs[2])
