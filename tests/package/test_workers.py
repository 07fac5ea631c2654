"""Work shared out to forked processes: results in order, from the workers, and still
owed when a worker dies."""

import os

import numpy as np
import pytest

from headgraph.errors import InputError
from headgraph.workers import ENV, forked_each, forked_map, usable_workers

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is Linux/Unix only")


def test_results_come_back_in_task_order_from_forked_workers():
    parent = os.getpid()
    table = np.arange(1_000) ** 2  # held before the call: the workers read it, unpickled

    def task(i: int) -> tuple[int, int]:
        return int(table[i * 7]), os.getpid()

    got = forked_map(task, 40, workers=2)
    assert [value for value, _ in got] == [(i * 7) ** 2 for i in range(40)]
    assert {pid for _, pid in got} - {parent}, "no task ran in a worker"
    assert parent not in {pid for _, pid in got}


def test_one_worker_runs_the_tasks_here():
    parent = os.getpid()
    assert forked_map(lambda i: (i, os.getpid()), 3, workers=1) == [(i, parent) for i in range(3)]
    assert forked_map(lambda i: i, 0, workers=4) == []


def test_a_worker_that_dies_costs_time_not_results():
    parent = os.getpid()

    def task(i: int) -> int:
        if os.getpid() != parent and i == 5:
            os._exit(9)  # as if killed mid-task (out of memory, a signal)
        return i * 3

    assert forked_map(task, 12, workers=2) == [i * 3 for i in range(12)]


def test_the_environment_caps_the_workers(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    monkeypatch.delenv(ENV, raising=False)
    assert usable_workers() == cpus
    monkeypatch.setenv(ENV, "1")
    assert usable_workers() == 1
    monkeypatch.setenv(ENV, str(cpus + 50))  # never more than one a CPU
    assert usable_workers() == cpus
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(InputError, match=f"{ENV} must be a positive whole number"):
            usable_workers()


def test_each_task_forked_as_it_arrives_holds_what_the_parent_held_then():
    parent = os.getpid()
    held = {"value": -1}

    def tasks():
        for i in range(9):
            held["value"] = i * i  # changed again while the earlier tasks run
            yield lambda: (held["value"], os.getpid())

    got = list(forked_each(tasks(), workers=2))
    assert [value for value, _ in got] == [i * i for i in range(9)]
    assert parent not in {pid for _, pid in got}
    assert [value for value, _ in forked_each(tasks(), workers=1)] == [i * i for i in range(9)]


def test_a_forked_task_that_dies_or_raises_runs_again_here():
    parent = os.getpid()

    def dies(i: int):
        if os.getpid() != parent:
            os._exit(9)
        return i

    assert list(forked_each((lambda i=i: dies(i) for i in range(4)), workers=2)) == [0, 1, 2, 3]

    def fails():
        raise ValueError(f"raised in {'the parent' if os.getpid() == parent else 'a worker'}")

    with pytest.raises(ValueError, match="raised in the parent"):
        list(forked_each([fails], workers=2))


def test_no_forked_task_outlives_a_caller_that_stops_early():
    import multiprocessing
    import signal
    import time

    def tasks():
        yield lambda: 0
        for _ in range(3):
            yield lambda: time.sleep(60)

    each = forked_each(tasks(), workers=3)
    assert next(each) == 0
    running = multiprocessing.active_children()
    assert len(running) == 2  # the next tasks run meanwhile
    each.close()
    assert multiprocessing.active_children() == []
    assert [p.exitcode for p in running] == [-signal.SIGTERM] * 2  # stopped, not waited for
