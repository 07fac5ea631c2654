"""On a CUDA machine: the trace and the causal checks agree with the CPU's, and their speed.

1. Agreement: the edges traced on CUDA and on the CPU (tiny-ioi, and the
   GPT-2-shaped random model), as the Jaccard index of their sets of
   (prompt, upstream, head, side, token); and verify's effects on both.
2. Speed, each against a baseline measured in the same run:
   - the trace (forward pass, decomposition, firings, edges) of 256 prompts
     of ``random:gpt2-small`` on CUDA against the same on the CPU;
   - ``verify_edges`` on 256 prompts and 8 edges on CUDA, against one clean
     forward pass there.

Usage (the device machine)::

    python benchmarks/bench_gpu.py

Issue 15's end-to-end figure (1,000 prompts traced and written to the embedded store)
comes from the ingest benchmark on the same machine, right after::

    python benchmarks/bench_ingest.py --device cuda --prompts 1000 --skip-rerun --index-rounds 1
"""

from __future__ import annotations

import time

import torch


def edges(model, prompts, batch_size=32):
    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.jobs.trace_job import default_seeds

    found = set()
    for batch in trace(model, prompts, seeds=default_seeds(model), batch_size=batch_size):
        for e in batch.edge_records():
            found.add((e.prompt_id, e.upstream.name, e.layer, e.head, e.side, e.token))
    return found


def columns(model, prompts, batch_size=32) -> int:
    """Trace, keeping the batches' columns (no Python records): the edges' count."""
    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.jobs.trace_job import default_seeds

    batches = trace(model, prompts, seeds=default_seeds(model), batch_size=batch_size)
    return sum(int(b.edge_weight.numel()) for b in batches)


def timed(call):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--skip-agreement", action="store_true")
    args = parser.parse_args()
    device, n_prompts = args.device, args.prompts

    from headgraph.ingest.causal.verify import verify_edges
    from headgraph.ingest.core.trace import pad_tokens
    from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
    from headgraph.ingest.model import load_model
    from headgraph.ingest.tasks.ioi import ioi_prompts
    from headgraph.names import EdgeKey

    where = torch.cuda.get_device_name(0) if device == "cuda" else device
    print(f"torch {torch.__version__}, {where}, CPU threads {torch.get_num_threads()}")
    # 1. agreement
    pairs = (("tiny-ioi", 128), ("random:gpt2-small", 32))
    for name, n in () if args.skip_agreement else pairs:
        cpu, gpu = load_model(name), load_model(name, device=device)
        prompts = task_prompts(cpu, n, seed=7)
        a, b = edges(cpu, prompts), edges(gpu, prompts)
        print(
            f"{name}: {len(a)} edges on the CPU, {len(b)} on {device}, "
            f"Jaccard {len(a & b) / len(a | b):.4f}"
        )
    tiny_cpu, tiny_gpu = load_model("tiny-ioi"), load_model("tiny-ioi", device=device)
    prompts = task_prompts(tiny_cpu, 64, seed=7)
    chosen = [
        EdgeKey("pos_embed", "0.2", "key"),
        EdgeKey("0.0", "1.3", "key"),
        EdgeKey("0.2", "1.0", "query"),
    ]
    for mode in () if args.skip_agreement else ("global", "local"):
        on_cpu = verify_edges(tiny_cpu, prompts, chosen, seeds=default_seeds(tiny_cpu), mode=mode)
        on_gpu = verify_edges(tiny_gpu, prompts, chosen, seeds=default_seeds(tiny_gpu), mode=mode)
        for c, g in zip(on_cpu, on_gpu, strict=True):
            print(
                f"  verify {mode} {c.edge.name:20s} effect CPU {c.effect:+.4f} "
                f"{device} {g.effect:+.4f}; "
                f"control CPU {c.control:+.4f} CUDA {g.control:+.4f}"
            )
    # 2. speed
    cpu = load_model("random:gpt2-small")
    gpu = load_model("random:gpt2-small", device=device)
    prompts = ioi_prompts(n_prompts, tokenizer=cpu.tokenizer, seed=0)
    edges(gpu, prompts[:32])  # warm up
    t_gpu, n_gpu = timed(lambda: columns(gpu, prompts))
    t_cpu, n_cpu = timed(lambda: columns(cpu, prompts))
    print(
        f"trace {n_prompts} prompts, as columns (what ingest writes): CPU {t_cpu:.1f} s, "
        f"{device} {t_gpu:.1f} s ({n_gpu} and {n_cpu} edges); speed-up {t_cpu / t_gpu:.1f}x"
    )
    t_gpu, found = timed(lambda: edges(gpu, prompts))
    t_cpu, _ = timed(lambda: edges(cpu, prompts))
    print(
        f"trace {n_prompts} prompts, as Python records: CPU {t_cpu:.1f} s, {device} {t_gpu:.1f} s "
        f"({len(found)} edges); speed-up {t_cpu / t_gpu:.1f}x"
    )
    counts = {}
    for p, u, l, h, s, _ in found:
        if "." in u and ":" not in u:
            counts.setdefault((u, f"{l}.{h}", s), set()).add(p)
    chosen = [EdgeKey(*k) for k in sorted(counts, key=lambda k: (-len(counts[k]), k))[:8]]

    def clean():
        for i in range(0, n_prompts, 32):
            gpu.log_probs(pad_tokens(prompts[i : i + 32])[0])

    clean()
    t_clean, _ = timed(clean)
    t_verify, effects = timed(
        lambda: verify_edges(gpu, prompts, chosen, seeds=default_seeds(gpu), batch_size=32)
    )
    pairs = sum(e.prompts for e in effects)
    print(
        f"verify {len(chosen)} edges x {n_prompts} prompts on {device}: {t_verify:.1f} s "
        f"({pairs} edge-prompt pairs), "
        f"{len(chosen) / t_verify:.2f} edges/s; one clean pass {t_clean:.2f} s, "
        f"ratio {t_verify / t_clean:.1f}"
    )


if __name__ == "__main__":
    main()
