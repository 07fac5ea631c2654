"""The notebook API's functions that put several steps together (see :mod:`headgraph`).

Each accepts a model by name, folder or object (a ``HookedTransformer`` of
your own is processed on a copy), and a store by address or object, with
keyword-only options and the same defaults as the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headgraph.errors import InputError

if TYPE_CHECKING:
    from headgraph.ingest.causal.verify import Metric
    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.core.records import Prompt, Seed
    from headgraph.ingest.core.tables import Trace
    from headgraph.ingest.jobs.ingest_job import IngestRun
    from headgraph.ingest.jobs.verify_job import Verification
    from headgraph.ingest.model.adapter import Model
    from headgraph.ingest.model.tokenizer import Tokenizer
    from headgraph.names import EdgeKey
    from headgraph.queries.store import GraphStore

ModelLike = Any  # a name, a folder, a Model, or a HookedTransformer
StoreLike = Any  # an address (folder, neo4j://...) or an open GraphStore


def _inputs(
    model: ModelLike,
    prompts: Sequence[Prompt] | str | Path | None,
    *,
    n_prompts: int,
    prompt_seed: int,
    seeds: str | Sequence[Seed] | None,
    seed_roles: str | None,
    seed_from: str | None,
    params: TraceParams | None,
    task: str,
    device: str,
    tokenizer: Tokenizer | None,
) -> tuple[Model, list[Prompt], tuple[Seed, ...], TraceParams]:
    """The model, prompts, seeds and parameters, with the command line's defaults."""
    from headgraph.ingest.core.params import MEAN_BATCH_MIN, TraceParams, choose_seeding
    from headgraph.ingest.core.records import parse_seeds
    from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
    from headgraph.ingest.model.loading import load_model

    model = load_model(model, device=device, tokenizer=tokenizer)
    if prompts is None:
        prompts = task_prompts(model, n_prompts, seed=prompt_seed, task=task)
    elif isinstance(prompts, (str, Path)):
        from headgraph.ingest.tasks.prompts_file import read_prompts

        prompts = read_prompts(prompts, model.tokenizer)
    if params is None:  # the command line's default: the complete trace, with the mean
        params = TraceParams()  # baseline where the prompts are enough for a mean
        if len(prompts) < MEAN_BATCH_MIN:
            params = dataclasses.replace(params, baseline="none")
    if seed_from is None and params.seeding != "heads":
        seed_from = params.seeding
    given = seeds is not None or seed_roles is not None
    support = bool(params.top_k or params.top_p)
    seeding = choose_seeding(seed_from, list(prompts), given=given, support=support)
    params = dataclasses.replace(params, seeding=seeding)
    if seeding != "heads":
        chosen: tuple[Seed, ...] = ()
    elif seeds is None:
        chosen = default_seeds(model, roles=seed_roles)
    elif isinstance(seeds, str):
        chosen = parse_seeds(seeds, seed_roles or "END:IO", n_heads=model.n_heads)
    else:
        if seed_roles is not None:
            raise InputError("seed_roles goes with seeds given as text ('9.9,10.0'), not Seeds")
        chosen = tuple(seeds)
    return model, list(prompts), chosen, params


@contextlib.contextmanager
def _opened(store: StoreLike, *, create: bool) -> Iterator[GraphStore]:
    """An open store as it is, or one opened from its address (for writing) and closed after."""
    from headgraph.queries.store import GraphStore, open_store

    if isinstance(store, GraphStore):
        yield store
        return
    with open_store(store, create=create) as opened:
        yield opened


def trace(
    model: ModelLike,
    prompts: Sequence[Prompt] | str | Path | None = None,
    *,
    n_prompts: int = 256,
    prompt_seed: int = 0,
    seeds: str | Sequence[Seed] | None = None,
    seed_roles: str | None = None,
    seed_from: str | None = None,
    params: TraceParams | None = None,
    batch_size: int = 32,
    task: str = "ioi",
    device: str = "cpu",
    tokenizer: Tokenizer | None = None,
) -> Trace:
    """Trace prompts in memory: every firing, its sparse set, and the edges into it.

    Args:
        model: A name (``tiny-ioi``, ``gpt2``, ``random:tiny``), a folder, a
            :class:`~headgraph.Model`, or your own ``HookedTransformer``.
        prompts: :class:`~headgraph.Prompt` objects, a prompts file, or None for
            ``n_prompts`` generated prompts of ``task`` (seeded by ``prompt_seed``).
        seeds: Seed heads as text (``"9.6,9.9,10.0"``, ``"11.*"``), Seed objects, or
            None for the model's own.
        seed_roles: ``DEST:SOURCE`` roles of the seed firings (``END:IO``).
        seed_from: ``linear`` (from each prompt's logit difference: its answer, and
            wrong answer if any), ``prob`` (from the probability of the answer, or of
            ``params.top_k`` / ``top_p``'s support) or ``heads`` (the seeds). Default:
            ``linear`` when every prompt has an answer and neither ``seeds`` nor
            ``seed_roles`` is given.
        params: The method's thresholds and options (default: the complete trace,
            ``TraceParams()``, with no baseline for fewer than 8 prompts;
            ``TraceParams.paper()`` is the paper's).
        batch_size: Prompts per forward pass.
        task: ``ioi`` or ``induction``, for generated prompts.
        device: ``cpu`` or ``cuda``.
        tokenizer: For a ``HookedTransformer`` that has none of its own.

    Returns:
        A :class:`~headgraph.Trace`: iterate its batches, or call ``to_pandas()``
        (``"edges"`` or ``"firings"``) and ``to_networkx()``.
    """
    from headgraph.ingest.core.tables import Trace
    from headgraph.ingest.core.trace import trace as trace_batches

    model, prompts, chosen, params = _inputs(
        model, prompts, n_prompts=n_prompts, prompt_seed=prompt_seed, seeds=seeds,
        seed_roles=seed_roles, seed_from=seed_from, params=params, task=task, device=device,
        tokenizer=tokenizer,
    )  # fmt: skip
    batches = trace_batches(model, prompts, seeds=chosen, params=params, batch_size=batch_size)
    return Trace(tuple(batches), model.name)


def ingest(
    model: ModelLike,
    prompts: Sequence[Prompt] | str | Path | None = None,
    *,
    store: StoreLike = "./headgraph-db",
    run: str | None = None,
    n_prompts: int = 256,
    prompt_seed: int = 0,
    seeds: str | Sequence[Seed] | None = None,
    seed_roles: str | None = None,
    seed_from: str | None = None,
    params: TraceParams | None = None,
    batch_size: int = 32,
    task: str = "ioi",
    device: str = "cpu",
    tokenizer: Tokenizer | None = None,
    progress: Callable[[int, int], None] | None = None,
    shards: int = 1,
    ray_address: str | None = None,
) -> IngestRun:
    """Trace prompts and write the circuit graph to a store (resumable, as the CLI's ingest).

    Args:
        model, prompts, n_prompts, prompt_seed, seeds, seed_roles, seed_from, params,
            batch_size, device, tokenizer: As for :func:`trace`.
        store: A folder (created if missing), ``neo4j://HOST:PORT``, or an open store.
        run: The run's name (default: ``MODEL-TASK-N``); the same name resumes it.
        task: The generated prompts' task, recorded on the run.
        progress: Called after each batch with (its prompt count, edges so far).
        shards: Trace the batches in this many Ray tasks (``headgraph[ray]``); the
            same graph as one process.
        ray_address: The Ray cluster to run them on (default: the one this process
            joined, else a local one).

    Returns:
        What was written: run name, counts, seconds. Read it with
        :func:`~headgraph.open_run`.
    """
    from headgraph.ingest.jobs.ingest_job import check_ingest
    from headgraph.ingest.jobs.ingest_job import ingest as ingest_job

    model, prompts, chosen, params = _inputs(
        model, prompts, n_prompts=n_prompts, prompt_seed=prompt_seed, seeds=seeds,
        seed_roles=seed_roles, seed_from=seed_from, params=params, task=task, device=device,
        tokenizer=tokenizer,
    )  # fmt: skip
    name = run or f"{Path(model.name).name}-{task}-{len(prompts)}"
    check_ingest(model, prompts, run=name, seeds=chosen, batch_size=batch_size, params=params,
                 shards=shards)  # fmt: skip
    with _opened(store, create=True) as opened:
        return ingest_job(
            model, prompts, store=opened, run=name, seeds=chosen, params=params,
            batch_size=batch_size, task=task, progress=progress, shards=shards,
            ray_address=ray_address,
        )  # fmt: skip


def verify(
    store: StoreLike,
    *,
    run: str | None = None,
    edges: Sequence[str | EdgeKey] = (),
    top: int = 10,
    mode: str = "global",
    boost: bool = False,
    metric: Metric | str | None = None,
    max_prompts: int | None = None,
    model: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
) -> Verification:
    """Measure the causal effect of a run's edges against random controls, and store them.

    Args:
        store: The store (an address or an open store, opened for writing).
        run: The run (default: the newest).
        edges: Edges such as ``"0.2-1.0:query"``; default: the ``top`` strongest.
        mode: ``global`` (where the upstream writes) or ``local`` (the head's input only).
        boost: Add the edge's part again instead of removing it.
        metric: ``f(log_probs [batch, vocab], prompts) -> [batch]``, or a built-in by
            name: ``ioi`` (logit difference IO - S at END), ``answer`` (the answer's
            log-prob less the wrong answer's), ``task`` (the default: ``ioi`` for IOI
            runs, else ``answer``).
        max_prompts: Use the run's first N prompts.
        model: Load this instead of the run's model name (checked against the store).
        seed: Seed of the controls (each edge's control depends on it and the edge alone).

    Returns:
        The effects, one per edge, and the stored rows.
    """
    from headgraph.ingest.jobs.verify_job import verify_run

    with _opened(store, create=False) as opened:
        return verify_run(
            opened, run=run, edges=edges, top=top, mode=mode, boost=boost, metric=metric,
            max_prompts=max_prompts, batch_size=batch_size, model_spec=model, device=device,
            seed=seed,
        )  # fmt: skip


def cypher(
    store: GraphStore, statement: str, params: dict[str, Any] | None = None, *, write: bool = False
) -> list[dict[str, Any]]:
    """Run a Cypher statement; read-only unless ``write`` (write clauses are refused).

    Returns:
        The rows, as dicts.
    """
    from headgraph.queries.cypher import run_cypher

    return run_cypher(store, statement, params or {}, write=write)
