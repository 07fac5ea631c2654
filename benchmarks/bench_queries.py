"""Speed of the query layer on a run of the real ingest, embedded store (target: under
1 s each, at 200k, 1M and 10M edges).

Builds the run with the real ingest job (``random:gpt2-small`` with the default
trace, a busy model with ~27k edges per prompt: 8 prompts give ~215k edges, 40
about 1M, 400 about 10M) unless ``--store`` names an existing one. Then it
times, median of ``--repeat`` calls after a first cold one, for two targets
(the head with the most edges into it, and the busiest head of the top layer,
whose cone is the whole run):

  baseline: ``paths --to X --top 10`` over the target's whole cone, as before
            the route index (and as for a run without one);
  paths --to X --top 10 and paths --to X --from 0.1, through the route index;
  redundancy --to X, as the run keeps it, and measured over the whole cone (as
  for a run that keeps none); features --head X, kept and from the edges,

and prints each as seconds and as a ratio to the baseline; then the run's circuit
(the explorer's view) read from its kept links, against the circuit computed
from every edge of the run (once: it is the slow one). Usage::

    python benchmarks/bench_queries.py [--prompts 8] [--store DIR --run NAME]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def timed(call, repeat: int) -> tuple[float, float]:
    """(first call, median of the next ``repeat``) in seconds."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times) if times else first


def build(folder: str, n_prompts: int) -> str:
    from headgraph.ingest.jobs.ingest_job import ingest
    from headgraph.ingest.jobs.trace_job import default_seeds
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.queries.store import open_store

    model = load_model("random:gpt2-small")
    prompts = ioi_prompts(n_prompts, tokenizer=model.tokenizer, seed=0)
    with open_store(folder) as store:
        ingest(model, prompts, store=store, run="bench", seeds=default_seeds(model))
    return "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="8 give ~215k edges.")
    parser.add_argument("--store", default=None, help="An existing store (skips the ingest).")
    parser.add_argument("--run", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reindex", action="store_true", help="Time rewriting the run's route index too."
    )
    args = parser.parse_args()

    from headgraph.queries.store import open_store

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.store or scratch
        run = args.run
        if args.store is None:
            start = time.perf_counter()
            run = build(folder, args.prompts)
            print(f"ingested run {run} in {time.perf_counter() - start:.0f} s (with its index)")
        if args.reindex or args.store is None:
            from headgraph.queries.index_build import write_index

            with open_store(folder) as store:
                start = time.perf_counter()
                nodes = write_index(store, run)
                print(
                    f"route index, kept circuit and redundancy: {nodes:,} nodes in "
                    f"{time.perf_counter() - start:.1f} s"
                )
        with open_store(folder, read_only=True) as store:
            info = store.run_info(run) if run else store.runs()[0]
            run = info.get("key", info.get("run"))
            heads = store.query(
                "MATCH ()-[s:SIGNAL]->(f:Firing) WHERE f.run = $run "
                "RETURN f.head_name AS head, f.layer AS layer, count(*) AS n",
                {"run": run},
            )
            busiest = max(heads, key=lambda h: (h["n"], h["head"]))["head"]
            deepest = max(heads, key=lambda h: (h["layer"], h["n"], h["head"]))["head"]
            print(
                f"run {run}: {info['edges']:,} edges, {info['firings']:,} firings, "
                f"{info['prompts']} prompts"
            )
            for target, why in ((busiest, "most edges into it"), (deepest, "whole run below it")):
                print(f"\ntarget {target} ({why})")
                measure(store, run, target, args.repeat)
            print("\nthe run's circuit (the explorer's first view: its 60 most relevant links)")
            measure_circuit(store, run, args.repeat)


def measure(store, run: str, target: str, repeat: int) -> None:
    from headgraph.queries.features import features
    from headgraph.queries.paths import paths
    from headgraph.queries.redundancy import redundancy

    calls = {
        "baseline: paths over the whole cone": lambda: paths(
            store, to=target, run=run, index=False
        ),
        f"paths --to {target} --top 10": lambda: paths(store, to=target, run=run),
        f"paths --to {target} --from 0.1": lambda: paths(store, to=target, from_="0.1", run=run),
        f"redundancy --to {target} (kept)": lambda: redundancy(store, to=target, run=run),
        f"redundancy --to {target}, the cone": lambda: redundancy(
            store, to=target, run=run, index=False
        ),
        f"features --head {target} (kept)": lambda: features(store, head=target, run=run),
        f"features --head {target}, the edges": lambda: features(
            store, head=target, run=run, index=False
        ),
    }
    base = None
    for name, call in calls.items():
        first, median = timed(call, repeat)
        base = base or median
        print(
            f"{name:40s} median {median:7.3f} s (first {first:6.3f} s)  "
            f"ratio to baseline {median / base:5.3f}"
            + ("" if name.startswith("baseline") else "  target < 1 s")
        )
    same = paths(store, to=target, run=run) == paths(store, to=target, run=run, index=False)
    print(f"the index's routes equal the whole cone's: {same}")
    kept = redundancy(store, to=target, run=run)
    same = kept == redundancy(store, to=target, run=run, index=False)
    print(f"the kept redundancy equals the cone's: {same}")
    same = features(store, head=target, run=run) == features(
        store, head=target, run=run, index=False
    )
    print(f"the kept features equal those of the edges: {same}")


def measure_circuit(store, run: str, repeat: int) -> None:
    from headgraph.queries import circuit as module

    kept = module.read_links

    def from_every_edge(**options):  # as before the links were kept, and for a run without
        module.read_links = lambda *args, **kwargs: None
        try:
            return module.circuit(store, run=run, **options)
        finally:
            module.read_links = kept

    calls = {
        "baseline: circuit --top 60 from every edge": lambda: from_every_edge(top=60),
        "circuit --top 60": lambda: module.circuit(store, run=run, top=60),
        "circuit --min-prompts 2 --top 500": lambda: module.circuit(
            store, run=run, min_prompts=2, top=500
        ),
        "circuit (every link)": lambda: module.circuit(store, run=run),
    }
    base = None
    for name, call in calls.items():
        first, median = timed(call, 0 if base is None else repeat)
        base = base or median
        print(
            f"{name:44s} median {median:7.3f} s (first {first:6.3f} s)  "
            f"ratio to baseline {median / base:5.3f}"
        )
    same = module.circuit(store, run=run, top=60) == from_every_edge(top=60)
    print(f"the kept links equal the circuit of every edge: {same}")


if __name__ == "__main__":
    main()
