"""Peak memory of tracing against prompt length, GPT-2-small shape, CPU (target: 512 tokens
within 8 GB).

For each length, two fresh processes (peak RSS only grows, so each figure needs its own):

  (a) the baseline: the model loaded, and one plain forward pass of the batch;
  (b) the trace: the model loaded, the batch traced (the default trace: every side, the
      mean baseline), its rows built as the ingest job builds them.

Prompts are random words of ``random:gpt2-small``'s vocabulary, seeded at every
last-layer head at the last token (a random model has no circuit: this measures
what the arrays cost). Prints both peaks, their ratio, and the edges traced. Usage::

    python benchmarks/bench_memory.py [--lengths 64,128,256,512] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TARGET_GB = 8.0


def child(length: int, batch_size: int, what: str, threshold: float) -> None:
    """Run in a fresh process: print the peak resident memory (GB) as JSON."""
    import random

    import torch

    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.core.records import Prompt, parse_seeds
    from headgraph.ingest.core.trace import pad_tokens
    from headgraph.ingest.jobs.batches import BatchJob, traced_batches
    from headgraph.ingest.model import load_model

    model = load_model("random:gpt2-small")
    rng = random.Random(length)
    prompts = tuple(
        Prompt(
            f"p{i}", "", tuple(rng.randrange(4, 100) for _ in range(length)), {"END": length - 1}
        )  # fmt: skip
        for i in range(batch_size)
    )
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start, edges = time.perf_counter(), 0
    if what == "forward":
        with torch.inference_mode():
            model.hooked(pad_tokens(prompts)[0], return_type=None)
    else:
        seeds = parse_seeds(f"{model.n_layers - 1}.*", "END:*", n_heads=model.n_heads)
        params = TraceParams(attention_threshold=threshold)
        job = BatchJob("bench", prompts, seeds, params, batch_size)
        edges = sum(traced.edges for traced in traced_batches(model, job, [0]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps({"peak": peak, "loaded": loaded, "edges": edges,
                      "seconds": time.perf_counter() - start}))  # fmt: skip


def measure(length: int, batch_size: int, what: str, threshold: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, "--lengths", str(length),
         "--batch-size", str(batch_size), "--attention-threshold", str(threshold)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="64,128,256,512")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attention-threshold", type=float, default=0.5)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    if args.child:
        child(lengths[0], args.batch_size, args.child, args.attention_threshold)
        return
    print(f"random:gpt2-small, batch {args.batch_size}, peak resident memory (GB)")
    print(f"{'tokens':>6} {'(a) forward':>12} {'(b) trace':>10} {'(b)/(a)':>8} {'edges':>8}  "
          f"{'trace s':>7}")  # fmt: skip
    for length in lengths:
        a = measure(length, args.batch_size, "forward", args.attention_threshold)
        b = measure(length, args.batch_size, "trace", args.attention_threshold)
        print(f"{length:>6} {a['peak']:>12.2f} {b['peak']:>10.2f} {b['peak'] / a['peak']:>8.2f} "
              f"{b['edges']:>8} {b['seconds']:>7.1f}")  # fmt: skip
    print(f"(the model alone: {a['loaded']:.2f} GB after loading; target: 512 tokens within "
          f"{TARGET_GB:.0f} GB)")  # fmt: skip


if __name__ == "__main__":
    main()
