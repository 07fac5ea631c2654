"""A run's batches traced into rows: what the ingest and the shards write."""

import weakref

import pytest

from headgraph.ingest.core import trace as trace_module
from headgraph.ingest.jobs import batches
from headgraph.ingest.jobs.batches import BatchJob, runs_of, traced_batches
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model


def test_runs_of_groups_consecutive_batches():
    assert runs_of([4, 0, 1, 6, 5]) == [[0, 1], [4, 5, 6]]
    assert runs_of([]) == []


@pytest.fixture(scope="module")
def job():
    model = load_model("tiny-ioi")
    prompts = tuple(task_prompts(model, 24, seed=5))
    return model, BatchJob("r", prompts, tuple(default_seeds(model)), trace_module.TraceParams(), 8)


def test_a_batch_is_let_go_before_the_next_is_traced(job, monkeypatch):
    """The ingest consumes each batch (writes it, drops it) before asking for the next: by
    then nothing may hold the batch's trace, else it and its rows (millions of Python
    objects on a large model) live through the next trace."""
    model, run = job
    alive = []  # each trace handed out and each batch delivered, weakly
    real = batches.trace

    def watched(*args, **kwargs):
        for batch_trace in real(*args, **kwargs):
            assert all(ref() is None for ref in alive), "an earlier batch is still held"
            alive.append(weakref.ref(batch_trace))
            yield batch_trace
            del batch_trace  # this wrapper holds none either

    monkeypatch.setattr(batches, "trace", watched)
    seen = []
    for delivered in traced_batches(model, run, [0, 1, 2]):
        seen.append((delivered.batch, delivered.prompts, delivered.edges))
        alive.append(weakref.ref(delivered))  # with its rows
        del delivered
    assert [(b, n) for b, n, _ in seen] == [(0, 8), (1, 8), (2, 8)]
    assert all(edges > 0 for *_, edges in seen)
    assert len(alive) == 6
