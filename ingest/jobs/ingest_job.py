"""The ingest job: trace prompts batch by batch and write the graph to a store.

Idempotent and resumable: each batch is one transaction that also records the
batch as done, so a run killed at any point and restarted with the same name
skips what it finished and ends with the same graph as an uninterrupted run.
A restart must use the same model, prompts and parameters; anything else is
refused before any work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from headgraph.bulk import collector_paused
from headgraph.errors import InputError
from headgraph.ingest.core.params import RunParams, TraceParams
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.trace import check_inputs
from headgraph.ingest.jobs.aggregates import (
    carries_rows,
    edge_partials,
    prediction_signals,
    stored_partials,
)
from headgraph.ingest.jobs.ahead import one_ahead
from headgraph.ingest.jobs.batches import BatchJob, traced_batches
from headgraph.ingest.jobs.graph_rows import (
    check_name,
    model_rows,
)
from headgraph.queries.index_build import index_rows
from headgraph.queries.selection import resolve_run
from headgraph.queries.store import GraphStore, StoreError
from headgraph.workers import usable_workers

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model


@dataclass(frozen=True)
class IngestRun:
    """What an ingest did."""

    run: str
    model: str
    prompts: int
    batches: int
    resumed: int  # batches found done by an earlier attempt
    firings: int
    edges: int
    seconds: float


def check_ingest(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    run: str,
    seeds: Sequence[Seed],
    batch_size: int,
    params: TraceParams = TraceParams(),
    counterfactuals: Sequence[Prompt] | None = None,
    shards: int = 1,
) -> None:
    """Everything :func:`ingest` checks before it writes; call it before opening a store, so
    that bad input leaves no store behind.

    Raises:
        InputError: a bad run name, prompt id, seed, role, batch size or shard count, or
            a bad ``HEADGRAPH_WORKERS`` (read when the run is indexed).
    """
    if not isinstance(shards, int) or shards < 1:
        raise InputError(f"shards must be a whole number, 1 or more (got {shards!r})")
    usable_workers()
    check_name("run name", run)
    for p in prompts:
        check_name("prompt id", p.id)
    check_inputs(model, prompts, seeds, batch_size, params, counterfactuals=counterfactuals)


def ingest(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    store: GraphStore,
    run: str,
    seeds: Sequence[Seed],
    params: TraceParams = TraceParams(),
    batch_size: int = 32,
    task: str = "ioi",
    progress: Callable[[int, int], None] | None = None,
    counterfactuals: Sequence[Prompt] | None = None,
    shards: int = 1,
    ray_address: str | None = None,
) -> IngestRun:
    """Trace ``prompts`` and write the run ``run`` to ``store`` (resuming it if it exists).

    ``counterfactuals`` (one per prompt) go with ``params.baseline == "counterfactual"``;
    they are stored with the prompts, so ``verify`` can trace the run again.

    ``shards`` above 1 (or a ``ray_address``) traces the batches in that many Ray tasks
    (:mod:`headgraph.ingest.jobs.shards`): the same graph, written into the same run.

    Raises:
        ValueError: bad input (checked before anything is written).
        StoreError: the run exists with another model or other parameters.
    """
    started = time.perf_counter()
    check_ingest(model, prompts, run=run, seeds=seeds, batch_size=batch_size, params=params,
                 counterfactuals=counterfactuals, shards=shards)  # fmt: skip
    recorded = RunParams.of(prompts, seeds, params, batch_size, counterfactuals).to_json()
    job = BatchJob(run, tuple(prompts), tuple(seeds), params, batch_size,
                   None if counterfactuals is None else tuple(counterfactuals))  # fmt: skip
    n_batches = len(job.bounds)
    writer = uuid.uuid4().hex  # this ingest, as the run's claim records it
    info = store.run_info(run)
    if info is None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        store.start_run(
            {
                "key": run,
                "model": model.key,
                "task": task,
                "params": recorded,
                "status": "running",
                "started": now,
                "finished": "",
                "prompts": len(prompts),
                "batches": n_batches,
                "done_batches": [],
                "firings": 0,
                "edges": 0,
            },
            None if store.has_model(model.key) else model_rows(model),
            writer=writer,
        )
        done: set[int] = set()
    elif info["model"] != model.key or info["params"] != recorded:
        what = f"model {info['model']}" if info["model"] != model.key else "other parameters"
        raise StoreError(
            f"run {run!r} already exists with {what} or prompts: choose another "
            "--run name (a restart must repeat the same command)"
        )
    else:
        store.claim_run(run, writer)  # refused while another ingest writes it
        if not store.has_model(model.key):  # a start killed before the model was written
            store.write(model_rows(model))
        done = set(info["done_batches"])
    todo = [b for b in range(n_batches) if b not in done]
    if progress and done:
        progress(sum(hi - lo for b, (lo, hi) in enumerate(job.bounds) if b in done), 0)
    if (shards > 1 or ray_address is not None) and todo:  # nothing left: no cluster needed
        from headgraph.ingest.jobs.shards import ray_batches  # Ray only where it is asked for

        delivered = ray_batches(model, job, todo, shards=shards, ray_address=ray_address,
                                store_address=store.shared_address)  # fmt: skip
    else:  # the next batch traced while this one is written, given a CPU to spare
        delivered = one_ahead(traced_batches(model, job, todo), enabled=usable_workers() > 1)
    written = 0
    # The collector stays paused throughout: the batch being written is millions of
    # Python objects that every collection the tracing triggers would walk again.
    with collector_paused(), closing(delivered):
        for traced in delivered:
            if traced.rows is None:  # a shard wrote it to the server
                store.mark_done(run, traced.batch)
            else:
                store.write_batch(run, traced.batch, traced.rows)
            written += traced.edges
            if progress:
                progress(traced.prompts, written)
            del traced  # its rows, before the batch after next is traced
    with collector_paused():
        counts = _finish(store, model, prompts, run=run, params=params)
    return IngestRun(
        run,
        model.key,
        len(prompts),
        n_batches,
        len(done),
        counts["firings"],
        counts["edges"],
        round(time.perf_counter() - started, 3),
    )


def _finish(store: GraphStore, model: Model, prompts: Sequence[Prompt], *, run: str,
            params: TraceParams) -> dict:  # fmt: skip
    """Sum the run's aggregates, write its route index and mark it complete: its counts."""
    partials = stored_partials(store, run)
    edges = store.query(
        "MATCH ()-[s:SIGNAL]->(f:Firing) WHERE f.run = $run RETURN count(s) AS n", {"run": run}
    )[0]["n"]
    if int(partials["weights"].to_numpy().sum()) != edges:  # batches an older headgraph wrote
        partials = edge_partials(store.signal_rows(run))
    counts = {
        "firings": store.query(
            "MATCH (f:Firing) WHERE f.run = $run RETURN count(f) AS n", {"run": run}
        )[0]["n"],
        "edges": edges,  # into heads; the seeds' edges into the logits come beside
        "status": "complete",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if params.seeding == "linear":  # the seeds, as edges from heads into the logits
        logits = edge_partials(prediction_signals(store, run, prompts, model=model.key))
        partials = pd.concat([partials, logits], ignore_index=True)
    carries = carries_rows(partials, model=model.key, run=run, n_prompts=len(prompts))
    index = index_rows(store, resolve_run(store, run))  # the route index
    store.finish_run(run, carries, counts, index=index)
    return counts
