"""A run's unit of work: its batches, traced into the rows a store writes.

The ingest job and the shards of a sharded ingest (:mod:`.shards`) both trace
batches through :func:`traced_batches`, so a batch gives the same rows whichever
process traces it, and any set of a run's batches can be traced apart from the
rest (a resumed run, a shard).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headgraph.bulk import collector_paused
from headgraph.ingest.core.params import TraceParams, batch_bounds
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.trace import BatchTrace, trace
from headgraph.ingest.jobs.graph_rows import batch_rows, edge_count
from headgraph.queries.store import Rows

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model


@dataclass(frozen=True)
class BatchJob:
    """What it takes to trace any batch of a run, apart from the model.

    Attributes:
        run: The run's name (it goes into every key).
        prompts: All of the run's prompts, in order.
        seeds: Where tracing starts.
        params: The thresholds and options.
        batch_size: Prompts per batch.
        counterfactuals: One per prompt, under the counterfactual baseline.
    """

    run: str
    prompts: tuple[Prompt, ...]
    seeds: tuple[Seed, ...]
    params: TraceParams
    batch_size: int
    counterfactuals: tuple[Prompt, ...] | None = None

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each batch (see :func:`batch_bounds`)."""
        return batch_bounds(len(self.prompts), self.batch_size, self.params)


@dataclass(frozen=True)
class Delivered:
    """A traced batch, as a shard delivers it.

    Attributes:
        batch: The batch's id.
        prompts: How many prompts it holds.
        rows: Its rows for the store, or None where the shard wrote them itself.
        edges: How many SIGNAL edges it holds.
    """

    batch: int
    prompts: int
    rows: dict[str, Rows] | None
    edges: int


def runs_of(batches: Sequence[int]) -> list[list[int]]:
    """Sorted batch ids grouped into runs of consecutive ids: ``[0, 1, 4]`` -> ``[[0, 1], [4]]``."""
    groups: list[list[int]] = []
    for b in sorted(batches):
        if groups and groups[-1][-1] == b - 1:
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def traced_batches(model: Model, job: BatchJob, batches: Sequence[int]) -> Iterator[Delivered]:
    """Trace some of a run's batches.

    Consecutive batches are traced in one pass over their prompts: the batch bounds of a
    stretch of whole batches are those the whole run gives it.

    Yields:
        Each batch with its rows, in the order of ``batches`` sorted.
    """
    bounds = job.bounds
    for group in runs_of(batches):
        start, end = bounds[group[0]][0], bounds[group[-1]][1]
        counterfactuals = job.counterfactuals
        cf = None if counterfactuals is None else counterfactuals[start:end]
        traced = trace(model, job.prompts[start:end], seeds=job.seeds, params=job.params,
                       batch_size=job.batch_size, counterfactuals=cf)  # fmt: skip
        # No name here holds a batch while the consumer writes it: its trace and its rows
        # (millions of Python objects) would live through the next batch's trace, which
        # the cyclic collector then walks again and again (the trace ran 30% slower).
        for batch in group:
            yield _delivered(next(traced), model, job, batch, bounds[batch])


def _delivered(
    batch_trace: BatchTrace, model: Model, job: BatchJob, batch: int, bound: tuple[int, int]
) -> Delivered:
    """One traced batch (prompts ``bound``: start, end) with its rows."""
    lo, hi = bound
    counterfactuals = job.counterfactuals
    with collector_paused():
        rows = batch_rows(
            batch_trace,
            run=job.run,
            batch=batch,
            tokenizer=model.tokenizer,
            counterfactuals=None if counterfactuals is None else counterfactuals[lo:hi],
        )
    return Delivered(batch, hi - lo, rows, edge_count(rows))
