"""Edges verified per second: ``verify_edges`` on a GPT-2-shaped random model, 256 IOI prompts.

Each edge is ablated (and its random control) over every prompt where it
occurs; the prompts are traced again batch by batch, and the edges of a batch
share forward passes. The baseline, measured in the same run, is one clean
forward pass over the same prompts (the least any causal check costs); the
ratio is the verification's time over it. Usage::

    python benchmarks/bench_verify.py [--prompts 256] [--edges 8] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--edges", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="random:gpt2-small")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from headgraph.ingest.causal.verify import verify_edges
    from headgraph.ingest.core.trace import pad_tokens, trace
    from headgraph.ingest.jobs.trace_job import default_seeds
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.names import EdgeKey

    torch.manual_seed(0)
    model = load_model(args.model, device=args.device)
    prompts = ioi_prompts(args.prompts, tokenizer=model.tokenizer, seed=0)
    seeds = default_seeds(model)

    # The edges: the head-to-head edges seen in the most prompts of the first batch.
    first = next(trace(model, prompts[: args.batch_size], seeds=seeds, batch_size=args.batch_size))
    counts = {}
    for edge in first.edge_records():
        if edge.upstream.kind == "head":
            key = EdgeKey(edge.upstream.name, f"{edge.layer}.{edge.head}", edge.side)
            counts.setdefault(key, set()).add(edge.prompt_id)
    edges = sorted(counts, key=lambda k: (-len(counts[k]), k))[: args.edges]

    start = time.perf_counter()
    for i in range(0, len(prompts), args.batch_size):
        model.log_probs(pad_tokens(prompts[i : i + args.batch_size])[0])
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    effects = verify_edges(model, prompts, edges, seeds=seeds, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    occurrences = sum(e.prompts for e in effects)
    print(
        f"{args.model}, {len(prompts)} prompts, batch {args.batch_size}, {len(edges)} edges "
        f"({occurrences} edge-prompt pairs), device {args.device}"
    )
    print(f"baseline: one clean forward pass over the prompts  {baseline:7.1f} s")
    print(
        f"verify: {len(edges)} edges with their controls        {seconds:7.1f} s  "
        f"ratio {seconds / baseline:.1f}"
    )
    print(
        f"{len(edges) / seconds:.3f} edges/s over {len(prompts)} prompts; "
        f"{occurrences / seconds:.1f} edge-prompt pairs/s"
    )
    for e in effects:
        print(
            f"  {e.edge.name:18s} {e.prompts:4d} prompts  effect {e.effect:+.4f}  "
            f"control {e.control:+.4f}"
        )


if __name__ == "__main__":
    main()
