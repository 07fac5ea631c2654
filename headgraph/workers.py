"""Pure NumPy/SciPy work spread over forked worker processes.

Most of the route index's work holds the interpreter's lock from start to end
(SciPy's ``maximum_flow``: two threads take as long as one; pandas and NumPy over
a layer's edges), so it is shared out to processes instead. They are forked: each
worker starts with the parent's arrays already in memory (copy-on-write), so a
task is only a function, and only its results travel back. Nothing is imported
or pickled per task, and no ``__main__`` guard is needed in the caller's script
(as it would be with spawn).

:func:`forked_map` forks its workers once, for tasks over what the parent already
holds; :func:`forked_each` forks a process per task as the task arrives, so the
parent can go on producing the next tasks (reading them from the store) while
the workers compute.

A forked worker must not touch torch or the store: a task here only reads NumPy
arrays (and pandas frames). Where fork is not available (not Linux), where one CPU
is usable, or where ``HEADGRAPH_WORKERS=1``, the tasks run in this process, in
order. A worker that dies (killed, out of memory) costs time, never results: its
tasks run again here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
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


def forked_each(tasks: Iterable[Callable[[], T]], *, workers: int) -> Iterator[T]:
    """Each task's result, in the tasks' order; each task runs in a process forked when
    the task arrives, so it holds what the parent held by then, and up to ``workers``
    run while this process produces the next tasks (``tasks`` may be a generator that
    reads them).

    Args:
        tasks: Read only what the parent held when they arrived; their results are
            pickled back. A task whose process dies (or raises) runs again here.
        workers: Most processes at a time; 1 (or fork unavailable): each task here,
            as it arrives.
    """
    if workers <= 1 or sys.platform != "linux":
        yield from (task() for task in tasks)
        return
    running: deque[tuple[Callable[[], T], BaseProcess, Connection]] = deque()
    try:
        for task in tasks:
            if len(running) >= workers:
                yield _collect(*running.popleft())
            running.append((task, *_start(task)))
        while running:
            yield _collect(*running.popleft())
    finally:  # the caller stopped early (an error, or enough): no process outlives it
        for _, process, receive in running:
            process.terminate()
            process.join()
            receive.close()


def _start(task: Callable[[], object]) -> tuple[BaseProcess, Connection]:
    """A process forked to run ``task``, and the end of the pipe its result comes back on."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    with warnings.catch_warnings():  # Python >= 3.12 warns of fork with threads running
        warnings.filterwarnings("ignore", "This process .* is multi-threaded")
        process = context.Process(target=_send, args=(task, send), daemon=True)
        process.start()
    send.close()  # the child's copy stays open: EOF here once it exits
    return process, receive


def _send(task: Callable[[], object], send) -> None:
    try:
        result = (True, task())
    except BaseException:  # raised again when the parent runs the task itself
        result = (False, None)
    send.send(result)
    send.close()


def _collect(task: Callable[[], T], process: BaseProcess, receive: Connection) -> T:
    """The result that ``process`` sends (read before it is joined: a large result
    fills the pipe), or the task run here where the process failed."""
    try:
        done, result = receive.recv()
    except (EOFError, OSError):  # the process died before it sent anything
        done, result = False, None
    finally:
        receive.close()
        process.join()
    return cast(T, result) if done else task()


def _run(i: int) -> object:
    assert _TASK is not None, "forked_map sets the task before forking"
    return _TASK(i)
