"""The next batch traced while this one is written.

An ingest alternates two kinds of work: tracing a batch and building its rows
(torch and Python), then writing them (the store's bulk load and commit, which
keep about one CPU busy and release the interpreter's lock while they run).
:func:`one_ahead` runs the tracing in a thread of its own, one batch ahead of
the writes, so that the two overlap on a machine with a CPU to spare.

At most two batches are alive at once: the one being written and the one being
traced. The thread never touches the store (all writes stay on the caller's
thread, in order), and it has finished before :func:`one_ahead` returns or
raises, so nothing runs behind the caller's back afterwards (the route index
forks worker processes, which must not inherit a running thread).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_END = object()  # the producer's last message: no more items


def one_ahead(items: Iterable[T], *, enabled: bool = True) -> Generator[T, None, None]:
    """``items``, each produced in a background thread while the caller uses the previous.

    The producer starts on ``items``' next item as soon as the caller takes one, and
    waits with it, finished, until the caller takes it in turn. An exception from
    ``items`` is raised here, at the item it replaces. Closing this iterator early
    (the caller's loop raising, or ``close()``) stops the producer after the item it is
    on and waits for it.

    Args:
        items: Produced in the background thread; its items must not be needed by that
            thread once handed over.
        enabled: False: ``items`` as they are, in the caller's thread (one CPU).
    """
    if not enabled:
        yield from items
        return
    handoff: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                handoff.put((item, None))
                del item  # the caller's alone from here
                handoff.join()  # taken: the caller is done with the one before
                if stop.is_set():
                    return
        except BaseException as error:  # handed to the caller, raised there
            handoff.put((_END, error))
        else:
            handoff.put((_END, None))

    producer = threading.Thread(target=produce, name="headgraph-one-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = handoff.get()
            handoff.task_done()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
            del item
    finally:
        stop.set()
        while producer.is_alive():  # let a producer waiting on its hand-over finish
            try:
                handoff.get(timeout=0.05)
                handoff.task_done()
            except queue.Empty:
                pass
        producer.join()
