"""Pure NumPy/SciPy work spread over forked worker processes.

Some of the route index's work holds the interpreter's lock from start to end
(SciPy's ``maximum_flow``: two threads take as long as one), so it is shared
out to processes instead. They are forked: each worker starts with the parent's
arrays already in memory (copy-on-write), so a task is only its index, and only
the small results travel back. Nothing is imported or pickled per task, and no
``__main__`` guard is needed in the caller's script (as it would be with spawn).

A forked worker must not touch torch or the store: a task here only reads NumPy
arrays. Where fork is not available (not Linux), where one CPU is usable, or where
``HEADGRAPH_WORKERS=1``, the tasks run in this process, in order. A worker that
dies (killed, out of memory) costs time, never results: the tasks run again here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar, cast

from headgraph.errors import InputError

T = TypeVar("T")

ENV = "HEADGRAPH_WORKERS"  # the most worker processes (1: none), at most one per CPU
_TASK: Callable[[int], object] | None = None  # what a forked worker runs, set before forking


def usable_workers() -> int:
    """The worker processes to use: the CPUs this process may run on, at most
    ``HEADGRAPH_WORKERS`` if set (a positive whole number)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    value = os.environ.get(ENV, "").strip()
    if not value:
        return cpus
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{ENV} must be a positive whole number, got {value!r}")
    return min(int(value), cpus)


def forked_map(task: Callable[[int], T], n: int, *, workers: int) -> list[T]:
    """``[task(0), ..., task(n - 1)]``, computed by up to ``workers`` forked processes.

    Args:
        task: Reads only what the parent held before the call (NumPy arrays); its
            results are pickled back.
        n: Tasks.
        workers: Most processes; 1 (or fork unavailable): in this process.
    """
    workers = min(workers, n)
    if workers <= 1 or sys.platform != "linux":
        return [task(i) for i in range(n)]
    global _TASK
    _TASK = task
    try:
        with warnings.catch_warnings():  # Python >= 3.12 warns of fork with threads running
            warnings.filterwarnings("ignore", "This process .* is multi-threaded")
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                return cast(list[T], list(pool.map(_run, range(n))))
    except BrokenProcessPool:  # a worker died: the results are still owed
        return [task(i) for i in range(n)]
    finally:
        _TASK = None


def _run(i: int) -> object:
    assert _TASK is not None, "forked_map sets the task before forking"
    return _TASK(i)
