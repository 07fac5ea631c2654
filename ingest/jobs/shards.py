"""Sharded ingest on Ray: a run's batches split into shards, each traced in a Ray task.

- A shard is a stretch of whole batches, traced by :func:`.batches.traced_batches`,
  so a sharded run writes the graph a single process writes.
- Each task loads the model by the name or folder it was loaded from (on a GPU
  when Ray gives the task one) and checks that it has the driver's fingerprint;
  a model built in Python travels through Ray's object store instead.
- The embedded store admits one writer: the tasks stream each traced batch back
  and the driver writes it. A server store (Neo4j) is written by the shards
  themselves; the driver then records each batch done, one at a time.
- A shard whose worker or machine dies is started again on the batches it had
  not delivered (up to :data:`SHARD_ATTEMPTS` times). A driver killed mid-run is
  rerun with the same command: each shard resumes after its done batches.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from headgraph.errors import HeadgraphError, InputError, ModelError
from headgraph.ingest.jobs.batches import BatchJob, Delivered, traced_batches

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model

SHARD_ATTEMPTS = 3  # tries of a shard whose worker dies, before the ingest gives up
RAY_HELP = "sharded ingest runs on Ray: pip install 'headgraph[ray]'"
log = logging.getLogger("headgraph.ingest")
_loaded: dict[tuple[str, str], Model] = {}  # a worker's models, by (source, device)


def plan_shards(batches: Sequence[int], shards: int) -> list[list[int]]:
    """Split batch ids into at most ``shards`` stretches of consecutive ids, as even as
    possible: ``plan_shards(range(5), 2)`` -> ``[[0, 1, 2], [3, 4]]``."""
    batches = sorted(batches)
    size, extra = divmod(len(batches), shards)
    plan, at = [], 0
    for shard in range(shards):
        take = size + (shard < extra)
        if take:
            plan.append(batches[at : at + take])
        at += take
    return plan


def ray_batches(
    model: Model,
    job: BatchJob,
    batches: Sequence[int],
    *,
    shards: int,
    ray_address: str | None = None,
    store_address: str | None = None,
) -> Generator[Delivered, None, None]:
    """Trace ``batches`` of a run in ``shards`` Ray tasks, yielding each batch as it arrives.

    Args:
        model: The driver's model (its ``source`` is reloaded in the workers, or the
            model itself is shipped when it has none).
        job: The run's batches.
        batches: The ids to trace (those a resumed run has not done).
        shards: How many tasks.
        ray_address: A running Ray cluster (``ray://host:10001``, ``auto``); None: the
            one this process already joined, else a local one started for the ingest.
        store_address: A server store the shards write to themselves; None: they
            return their rows to the driver.

    Raises:
        InputError: Ray is not installed, or the cluster cannot be joined.
        HeadgraphError: a shard's own error (a model the worker cannot load...).
    """
    ray: Any = _ray()
    started = _join(ray, ray_address)
    from ray.exceptions import RayError, RayTaskError

    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(_trace_shard).options(
            num_cpus=1, num_gpus=gpus, max_retries=0, num_returns="streaming"
        )
        source = model.source if model.source is not None else ray.put(model)
        job_ref = ray.put(job)
        remaining = dict(enumerate(plan_shards(batches, shards)))
        attempts = dict.fromkeys(remaining, 1)

        def submit(shard: int):
            return task.remote(source, model.key, job_ref, remaining[shard], store_address)

        running = {submit(shard): shard for shard in remaining}
        try:
            while running:
                (stream,), _ = ray.wait(list(running), num_returns=1)
                shard = running[stream]
                try:
                    delivered = ray.get(next(stream))
                except StopIteration:
                    del running[stream]
                    continue
                except RayTaskError as error:  # the shard's own error
                    cause = error.cause
                    raise cause if isinstance(cause, HeadgraphError) else error from None
                except RayError as error:  # its worker or machine died
                    del running[stream]
                    if attempts[shard] == SHARD_ATTEMPTS:
                        raise HeadgraphError(
                            f"shard {shard} failed {SHARD_ATTEMPTS} times "
                            f"({type(error).__name__}): rerun the same command to resume the run"
                        ) from None
                    attempts[shard] += 1
                    log.warning(
                        "shard %d lost its worker (%s): tracing its %d remaining batches again",
                        shard, type(error).__name__, len(remaining[shard]),
                    )  # fmt: skip
                    running[submit(shard)] = shard
                    continue
                remaining[shard].remove(delivered.batch)
                yield delivered
        finally:
            for stream in running:
                ray.cancel(stream, force=True)
    finally:
        if started:
            ray.shutdown()


def _trace_shard(
    source: Any, key: str, job: BatchJob, batches: list[int], store_address: str | None
) -> Iterator[Delivered]:
    """A Ray task: trace a shard's batches, and write them where the store is shared."""
    model = _worker_model(source, key)
    store = None
    if store_address is not None:
        from headgraph.queries.store import open_store

        store = open_store(store_address)
    try:
        for traced in traced_batches(model, job, batches):
            if store is not None and traced.rows is not None:
                store.write_batch(job.run, traced.batch, traced.rows, done=False)
                traced = replace(traced, rows=None)
            yield traced
            del traced  # before the next batch is traced (see traced_batches)
    finally:
        if store is not None:
            store.close()


def _worker_model(source: Any, key: str) -> Model:
    """The model in a worker: reloaded from its source (once per worker), checked against
    the driver's key."""
    if not isinstance(source, str):
        return source  # shipped whole
    import ray

    device = "cuda" if ray.get_gpu_ids() else "cpu"
    if (source, device) not in _loaded:
        from headgraph.ingest.model import load_model

        _loaded[(source, device)] = load_model(source, device=device)
    model = _loaded[(source, device)]
    if model.key != key:
        raise ModelError(
            f"a Ray worker loaded {source!r} as {model.key}, not the driver's {key}: every "
            "machine of the cluster must see the same model (the same folder, the same weights)"
        )
    return model


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError(RAY_HELP) from None
    return ray


def _join(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` (or start a local one); True when this call started
    Ray and so shuts it down after."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"at {address}" if address else "on this machine"
        raise InputError(f"cannot start or join a Ray cluster {where}: {error}") from None
    return True
