"""The ingest end to end, phase by phase, against the trace alone measured in the same run.

`random:gpt2-small` over IOI prompts (batch 32), written to a fresh embedded store:

- (a) the baseline: the trace alone, its batches kept as columns (no store);
- (b) ``ingest()`` end to end, and where its time goes: the batches (the trace, the rows
  of each batch (``batch_rows``) and the store's batch writes; the next batch is traced
  in a thread of its own while this one is written, so their times overlap: their sum
  less the batches' wall clock is printed too; negative for a job that overlaps nothing,
  whose untimed work, freeing each batch's rows, shows there), and the finish (the
  aggregates, the route index with the circuit, redundancy and features kept beside it,
  and their write);
- (c) the same ingest run again on the complete run (nothing to trace: the finish
  again), which a killed-and-restarted ingest pays;
- (d) with ``--index-rounds N``: the route index of the stored run built again, in one
  process and with a layer to each worker process (``queries/index_build.py``),
  alternating, N times each.

Issue 15's target on a GPU machine is 1,000 such prompts traced and written in under
60 s; the figures here say which phase stands in the way.

Usage::

    python benchmarks/bench_ingest.py [--prompts 128] [--device cpu] [--index-rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager


class PhaseClock:
    """Time spent in some functions of the ingest job, by name, while ``watching``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def watching(self, targets: list[tuple[str, object, str]]):
        """``targets``: (phase name, module or class, function name); a phase may have several."""
        saved = []
        for phase, owner, name in targets:
            function = getattr(owner, name, None)
            if function is None:  # an older headgraph's job (benchmarking it side by side)
                continue
            saved.append((owner, name, function))
            setattr(owner, name, self._timed(phase, function))
        try:
            yield self
        finally:
            for owner, name, function in saved:
                setattr(owner, name, function)

    def _timed(self, phase, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-rerun", action="store_true", help="leave out (c)")
    parser.add_argument(
        "--index-rounds", type=int, default=0, help="(d): the index built again N times each way"
    )
    args = parser.parse_args()

    import torch

    from headgraph.ingest.core import trace as tracing
    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.jobs import batches, ingest_job
    from headgraph.ingest.jobs.trace_job import default_seeds
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.queries.store import open_store
    from headgraph.queries.store.embedded import EmbeddedStore

    model = load_model("random:gpt2-small", device=args.device)
    prompts = ioi_prompts(args.prompts, tokenizer=model.tokenizer, seed=0)
    seeds = default_seeds(model)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    list(trace(model, prompts[: args.batch_size], seeds=seeds, batch_size=args.batch_size))
    start = time.perf_counter()
    edges = sum(
        int(b.edge_weight.numel())
        for b in trace(model, prompts, seeds=seeds, batch_size=args.batch_size)
    )
    sync()
    baseline = time.perf_counter() - start
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads; "
          f"{args.prompts} prompts, {edges:,} traced edges")  # fmt: skip

    clock = PhaseClock()
    targets = [
        ("trace", tracing, "run_batch"),
        ("trace", tracing, "trace_batch"),
        ("rows", batches, "batch_rows"),
        ("batch writes", EmbeddedStore, "write_batch"),
        ("finish", ingest_job, "_finish"),
        ("  aggregates", ingest_job, "stored_partials"),
        ("  aggregates", ingest_job, "carries_rows"),
        ("  route index", ingest_job, "index_rows"),
        ("  its write", EmbeddedStore, "finish_run"),
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"{folder}/db")
        with clock.watching(targets):
            start = time.perf_counter()
            run = ingest_job.ingest(model, prompts, store=store, run="bench", seeds=seeds,
                                    batch_size=args.batch_size)  # fmt: skip
            sync()
            total = time.perf_counter() - start
        start = time.perf_counter()
        if not args.skip_rerun:
            ingest_job.ingest(model, prompts, store=store, run="bench", seeds=seeds,
                              batch_size=args.batch_size)  # fmt: skip
        rerun = time.perf_counter() - start
        index_times = index_rounds(store, args.index_rounds)
        store.close()
    phases = {name: clock.seconds[name] for name, *_ in targets if name in clock.seconds}
    if "finish" not in phases:  # an older job, without one function for it
        parts = ("  aggregates", "  route index", "  its write")
        phases = {**phases, "finish": sum(phases.get(p, 0.0) for p in parts)}
        phases = {k: phases[k] for k in ("rows", "batch writes", "finish", *parts) if k in phases}
    batches_wall = total - phases["finish"]
    in_batches = ("trace", "rows", "batch writes")
    if "trace" not in phases:  # an older job, one batch at a time: the rest is the trace
        phases["trace"] = batches_wall - phases["rows"] - phases["batch writes"]
    overlap = sum(phases[name] for name in in_batches) - batches_wall
    rows = [
        ("(a) the trace alone (columns), the baseline", baseline),
        ("(b) ingest end to end", total),
        ("    the batches (wall clock)", batches_wall),
        *((f"      {name}", phases[name]) for name in in_batches),
        ("      their sum less the wall clock (overlapped)", overlap),
        *(
            (f"    {name.strip()}" if not name.startswith(" ") else f"      {name.strip()}", t)
            for name, t in phases.items()
            if name not in in_batches
        ),  # fmt: skip
    ]
    if not args.skip_rerun:
        rows.append(("(c) the same ingest again (the run complete)", rerun))
    print(f"{'phase':48s} {'seconds':>8s} {'/ (a)':>7s}")
    for name, seconds in rows:
        print(f"{name:48s} {seconds:8.1f} {seconds / baseline:7.2f}")
    rate = args.prompts / total
    print(f"stored {run.edges:,} edges and {run.firings:,} firings: {run.edges / total:,.0f} "
          f"edges/s, {rate:.2f} prompts/s end to end (1,000 prompts at this rate: "
          f"{1000 / rate:.0f} s; issue 15's target on a GPU: under 60 s)")  # fmt: skip
    if index_times:
        alone, shared = (min(index_times[w]) for w in index_times)
        workers = next(w for w in index_times if w > 1)
        print(f"(d) the stored run's route index, fastest of {args.index_rounds} each, in turn: "
              f"in one process {alone:.1f} s, a layer to each of {workers} workers "
              f"{shared:.1f} s ({alone / shared:.2f}x)")  # fmt: skip


def index_rounds(store, rounds: int) -> dict[int, list[float]]:
    """(d) ``index_rows`` of the stored run in one process (the baseline) and with a layer
    to each worker process (one a usable CPU), ``rounds`` times each, alternating."""
    from headgraph.queries.index_build import index_rows
    from headgraph.queries.selection import resolve_run
    from headgraph.workers import usable_workers

    if not rounds or usable_workers() < 2:
        return {}
    ref, times = resolve_run(store, "bench"), {1: [], usable_workers(): []}
    for _ in range(rounds):
        for workers in times:
            start = time.perf_counter()
            index_rows(store, ref, workers=workers)
            times[workers].append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
