"""Speed of the embedded store: writing ~200k per-prompt edges, and two queries on them.

Edges are real: prompts traced through ``random:gpt2-small`` (a busy model,
~9k edges per prompt) until ~200k edges are in hand. Then it measures

  (a) the baseline: one raw COPY of the same SIGNAL rows into a bare table
      (no firings, no transactions, no bookkeeping), and
  (b) the store: ``write_batch`` per prompt batch (firings, prompts, edges,
      sites, the done-batch mark), one transaction each,

and prints edges/second for both and their ratio (target: (b) >= 40k
edges/s). Then, on the stored graph, the median latency of a path query
filtered by prompt and of a top-k aggregate (target: < 50 ms each), and the run's
end-of-run aggregation: from the batches' partial aggregates against reading every
edge back (the baseline); and the bytes per edge of the store and of its CSV export
(for ``neo4j-admin database import``). Usage::

    python benchmarks/bench_store.py [--edges 200000] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import ladybug
    import pandas as pd

    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.jobs.aggregates import carries_rows, edge_partials, stored_partials
    from headgraph.ingest.jobs.graph_rows import SIGNAL_TABLES, batch_rows, edge_count, model_rows
    from headgraph.ingest.jobs.trace_job import default_seeds
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.queries.store.embedded import EmbeddedStore
    from headgraph.queries.store.schema import REL

    model = load_model("random:gpt2-small")
    prompts = ioi_prompts(256, tokenizer=model.tokenizer, seed=0)
    batches, edges = [], 0
    for i, batch in enumerate(
        trace(model, prompts, seeds=default_seeds(model), batch_size=args.batch_size)
    ):
        rows = batch_rows(batch, run="bench", batch=i, tokenizer=model.tokenizer)
        batches.append(rows)
        edges += edge_count(rows)
        if edges >= args.edges:
            break
    n_prompts = sum(len(b["Prompt"]["key"]) for b in batches)
    firings = sum(len(b["Firing"]["key"]) for b in batches)
    print(f"{edges} edges, {firings} firings from {n_prompts} prompts of random:gpt2-small")

    with tempfile.TemporaryDirectory() as folder:
        # (a) baseline: the same edge rows, one raw COPY into a bare relationship table
        db = ladybug.Database(f"{folder}/raw.lbug")
        conn = ladybug.Connection(db)
        conn.execute("CREATE NODE TABLE N(key STRING, PRIMARY KEY(key))")
        columns = REL["SIGNAL"].properties  # the same columns as the store's edges
        conn.execute(
            "CREATE REL TABLE E(FROM N TO N, "
            + ", ".join(f"`{name}` {kind}" for name, kind in columns)
            + ")"
        )
        signal = pd.concat([pd.DataFrame(b[t]) for b in batches for t in SIGNAL_TABLES if b[t]])
        nodes = pd.DataFrame({"key": pd.unique(pd.concat([signal["from"], signal["to"]]))})  # noqa: F841
        conn.execute("COPY N FROM nodes")
        raw = signal[["from", "to", *(name for name, _ in columns)]]  # noqa: F841
        start = time.perf_counter()
        conn.execute("COPY E FROM raw")
        baseline = time.perf_counter() - start
        conn.close()
        db.close()

        # (b) the store, batch by batch
        store = EmbeddedStore(f"{folder}/store")
        store.start_run(
            {
                "key": "bench",
                "model": model.key,
                "task": "ioi",
                "params": "{}",
                "status": "running",
                "started": "",
                "finished": "",
                "prompts": n_prompts,
                "batches": len(batches),
                "done_batches": [],
                "firings": 0,
                "edges": 0,
            },
            model_rows(model),
        )
        start = time.perf_counter()
        for i, rows in enumerate(batches):
            store.write_batch("bench", i, rows)
        stored = time.perf_counter() - start
        print(
            f"(a) raw COPY of the edge rows  {edges / baseline:10,.0f} edges/s  ({baseline:.2f} s)"
        )
        print(
            f"(b) store, {len(batches)} transactions    {edges / stored:10,.0f} edges/s  "
            f"({stored:.2f} s, firings and prompts included)"
        )
        print(f"ratio (b)/(a) = {baseline / stored:.2f}; target (b) >= 40,000 edges/s")
        # (c) the run's aggregates (CARRIES) at its end: every edge read back (the baseline,
        # as headgraph did before) against the partials each batch wrote
        start = time.perf_counter()
        signals = store.signal_rows("bench")
        carries_rows(edge_partials(signals), model=model.key, run="bench", n_prompts=n_prompts)
        read_back = time.perf_counter() - start
        start = time.perf_counter()
        partials = stored_partials(store, "bench")
        t_read = time.perf_counter() - start
        carries = carries_rows(partials, model=model.key, run="bench", n_prompts=n_prompts)
        summed = time.perf_counter() - start
        print(f"   (read {t_read:.2f} s, sum {summed - t_read:.2f} s)")
        store.finish_run("bench", carries, {"status": "complete"})
        print(
            f"(c) end-of-run aggregates: {len(signals)} edges read back {read_back:.2f} s; "
            f"{len(partials)} partials summed and written {summed:.2f} s; "
            f"ratio {read_back / summed:.1f}x"
        )

        # (d) size: the store's folder and the neo4j-admin CSV export, per edge
        from pathlib import Path

        from headgraph.queries.export import export_run

        def size(path: str) -> int:
            return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())

        export_run(store, run="bench", format="csv", out=Path(folder) / "csv")
        for name, path in (("embedded store", f"{folder}/store"), ("CSV export", f"{folder}/csv")):
            per_edge = size(path) / edges
            print(
                f"(d) {name}: {per_edge:,.0f} bytes per edge (firings, sites, prompts and "
                f"aggregates included); 10M edges: {per_edge * 1e7 / 1e9:.1f} GB"
            )

        prompt = batches[0]["Prompt"]["id"][0]
        head = max(set(batches[0]["Firing"]["head_name"]))
        queries = {
            "path into a head, one prompt (<= 3 hops)": (
                "MATCH p = (a:Firing)-[:SIGNAL*1..3]->(f:Firing) WHERE f.prompt = $prompt AND "
                "f.head_name = $head AND a.prompt = $prompt RETURN count(p) AS n",
                {"prompt": prompt, "head": head},
            ),
            "top-10 edges by prompts (CARRIES aggregate)": (
                "MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE c.run = $run "
                "RETURN a.name AS up, b.name AS head, c.side AS side, c.role AS role, "
                "c.prompts AS n ORDER BY n DESC, up, head LIMIT 10",
                {"run": "bench"},
            ),
        }
        for name, (cypher, params) in queries.items():
            store.query(cypher, params)  # warm
            times = []
            for _ in range(20):
                start = time.perf_counter()
                rows = store.query(cypher, params)
                times.append(time.perf_counter() - start)
            print(
                f"{name:45s} median {1000 * statistics.median(times):7.1f} ms  "
                f"({len(rows)} rows; target < 50 ms)"
            )
        store.close()


if __name__ == "__main__":
    main()
