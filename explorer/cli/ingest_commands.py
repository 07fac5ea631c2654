"""The commands that run a model: trace (to a file), ingest (to a store), train-tiny-ioi.

Arguments are checked before torch is imported: a refused threshold, seed or
file answers at once, not after the model has loaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import click

from headgraph.errors import InputError
from headgraph.explorer.cli.common import SETTINGS, add_options, progress_bar, store_option
from headgraph.explorer.output import aligned
from headgraph.ingest.core.params import (
    BASELINES,
    EDGE_RULES,
    MEAN_BATCH_MIN,
    WEIGHTINGS,
    TraceParams,
    choose_seeding,
)
from headgraph.ingest.core.records import parse_seeds

TRACING_OPTIONS = [
    click.option(
        "--model",
        "model_spec",
        default="tiny-ioi",
        help="tiny-ioi, a TransformerLens name (gpt2), a local Hugging Face "
        "folder, a tiny-ioi checkpoint FILE.pt, or random:PRESET (gpt2-small, tiny).",
    ),
    click.option(
        "--task",
        type=click.Choice(["ioi", "induction", "greater-than"]),
        default="ioi",
        help="Prompt task: IOI (answer IO, wrong S), induction (a repeated random word "
        "sequence; answer: the word that followed the first occurrence) or greater-than "
        "(answers: every later year; needs GPT-2-style number tokens).",
    ),
    click.option(
        "--prompts",
        "n_prompts",
        type=click.IntRange(min=1, max=1_000_000),
        default=256,
        help="Number of prompts to generate.",
    ),
    click.option("--prompt-seed", type=int, default=0, help="Seed of the prompt generator."),
    click.option(
        "--prompts-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="JSON Lines prompts (id, text, roles) instead of "
        "generated ones; checked whole before any work.",
    ),
    click.option(
        "--seeds",
        "seed_heads",
        default=None,
        help="Seed heads, e.g. 9.6,9.9,10.0 or 11.* [default: the model's own].",
    ),
    click.option(
        "--seed-roles",
        default=None,
        help="DEST:SOURCE roles of the seed firings (SOURCE * for any); alone, they apply "
        "to the model's own seed heads [default: the model's own, else END:IO].",
    ),
    click.option(
        "--seed-from",
        type=click.Choice(["linear", "prob", "heads"]),
        default=None,
        help="Where tracing starts: linear (each prompt's logit difference, split into "
        "heads by source token), prob (the answer support's probability: integrated "
        "gradients, then greedy removal, as ACC++) or heads (--seeds) [default: linear "
        "when the prompts have answers and no --seeds or --seed-roles are given, else heads].",
    ),
    *(
        click.option(
            flag,
            type=type(getattr(TraceParams, field)),
            default=getattr(TraceParams, field),
            help=text,
        )
        for flag, field, text in (
            (
                "--seed-frac",
                "seed_frac",
                "Linear seeding: share of the prediction the cutoff's running sum must exceed.",
            ),
            (
                "--tau",
                "tau",
                "Prob seeding: share of the support's log-probability the seeds' removal destroys.",
            ),
            ("--ig-steps", "ig_steps", "Prob seeding: integrated-gradient steps."),
            (
                "--top-k",
                "top_k",
                "Prob seeding: the support is the clean prediction's top K tokens (0: the answer).",
            ),
            (
                "--top-p",
                "top_p",
                "Prob seeding: the support is the clean prediction's top-P mass (0: the answer).",
            ),
            (
                "--attention-threshold",
                "attention_threshold",
                "A pair fires at this attention weight or more.",
            ),
            (
                "--signal-frac",
                "signal_frac",
                "Share of the score that the sparse set S must exceed.",
            ),
            (
                "--edge-frac",
                "edge_frac",
                "Share of the positive contributions that the edges must reach.",
            ),
            ("--competitors", "competitors", "Stakes: the most competitors a firing inhibits."),
        )
    ),  # fmt: skip
    click.option(
        "--sides",
        default=",".join(TraceParams.sides),
        help="Sides of a firing decomposed into edges, comma-separated: query, key (the "
        "paper's trace: --sides query,key --baseline none), value (what a head moves from "
        "its source, read along what its readers use), inhibit (what keeps it off the "
        "sources whose win would cost its readers most).",
    ),
    click.option(
        "--baseline",
        type=click.Choice(BASELINES),
        default=None,
        help="Measure contributions less each output's mean over the batch's prompts at the "
        "same token role (mean: a constant input then makes no edge), as they are (none: "
        "the paper's), or less the output on the prompt's ABC corruption (counterfactual: "
        f"the ioi task). [default: mean; none for a run of under {MEAN_BATCH_MIN} prompts]",
    ),
    click.option(
        "--edge-rule",
        type=click.Choice(EDGE_RULES),
        default=TraceParams.edge_rule,
        help="Edges reach --edge-frac of the positive contributions, or of their signed "
        "total (the authors' code).",
    ),
    click.option(
        "--weighting",
        type=click.Choice(WEIGHTINGS),
        default=TraceParams.weighting,
        help="Relevance through the key, inhibition and value sides: what the readers stand "
        "to lose through each (stakes; the competitors by that loss) or the softmax's "
        "sensitivity 4A(1-A) (the most attended competitor: runs traced before).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=32,
        help="Prompts per forward pass (and per store transaction).",
    ),
    click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu"),
]


def prepare(
    *,
    model_spec,
    task,
    n_prompts,
    prompt_seed,
    prompts_file,
    seed_heads,
    seed_roles,
    seed_from,
    seed_frac,
    tau,
    ig_steps,
    top_k,
    top_p,
    attention_threshold,
    signal_frac,
    edge_frac,
    sides,
    baseline,
    edge_rule,
    weighting,
    competitors,
    batch_size,
    device,
):
    """Model, prompts and the job's options from the shared options.

    Everything that can be checked without the model is checked first.
    """
    try:
        if seed_from in ("linear", "prob") and (seed_heads or seed_roles):
            raise InputError(
                f"--seed-from {seed_from} starts from the prediction: leave out --seeds and "
                "--seed-roles (or use --seed-from heads)"
            )
        if baseline == "counterfactual" and (prompts_file is not None or task != "ioi"):
            raise InputError(
                "--baseline counterfactual compares each prompt with its counterfactual: the "
                "ioi task's ABC corruption; a prompts file or another task gives none (use "
                "--baseline mean)"
            )
        if (top_k or top_p) and seed_from != "prob":
            raise InputError("--top-k and --top-p set prob seeding's support: add --seed-from prob")
        params = TraceParams(
            attention_threshold, signal_frac, edge_frac, seed_frac=seed_frac, tau=tau,
            ig_steps=ig_steps, top_k=top_k, top_p=top_p,
            sides=tuple(s.strip() for s in sides.split(",") if s.strip()),
            baseline=baseline or TraceParams.baseline, edge_rule=edge_rule, weighting=weighting,
            competitors=competitors,
        )  # fmt: skip
        if seed_heads is not None:  # the syntax now; the heads against the model below
            parse_seeds(seed_heads, seed_roles or "END:IO", n_heads=1)
        elif seed_roles is not None:
            parse_seeds("0.0", seed_roles, n_heads=1)
    except InputError as error:
        raise click.UsageError(str(error)) from None
    from headgraph.ingest.jobs.trace_job import default_seeds, task_counterfactuals, task_prompts
    from headgraph.ingest.model import load_model

    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: no CUDA device is visible; use --device cpu")
    model = load_model(model_spec, device=device)
    if prompts_file is not None:
        from headgraph.ingest.tasks.prompts_file import read_prompts

        prompts = read_prompts(prompts_file, model.tokenizer)
    else:
        prompts = task_prompts(model, n_prompts, seed=prompt_seed, task=task)
    seeding = choose_seeding(
        seed_from, prompts, given=bool(seed_heads or seed_roles), support=bool(top_k or top_p)
    )
    params = replace(params, seeding=seeding)
    if baseline is None and (len(prompts) < MEAN_BATCH_MIN or batch_size < 2):
        click.echo(
            f"note: the mean baseline needs {MEAN_BATCH_MIN} prompts or more, in batches of "
            f"2 or more: tracing these {len(prompts)} with --baseline none",
            err=True,
        )
        params = replace(params, baseline="none")
    if seeding != "heads":
        seeds = ()
    elif seed_heads is None:
        seeds = default_seeds(model, roles=seed_roles)
    else:
        seeds = parse_seeds(seed_heads, seed_roles or "END:IO", n_heads=model.n_heads)
    counterfactuals = None
    if params.baseline == "counterfactual":
        counterfactuals = task_counterfactuals(model, prompts, task=task)
    options = {"seeds": seeds, "params": params, "batch_size": batch_size, "task": task,
               "counterfactuals": counterfactuals}  # fmt: skip
    return model, prompts, options


@click.command("trace", context_settings=SETTINGS)
@add_options(TRACING_OPTIONS)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("traces.jsonl"),
    help="JSON Lines file for the firings, edges and run.",
)
@click.option("--top", type=click.IntRange(min=0), default=10, help="Edges to show in the summary.")
def trace_command(out, top, **shared):
    """Trace prompts and write firings and edges to a JSON Lines file (no store)."""
    model, prompts, options = prepare(**shared)
    from headgraph.ingest.jobs.trace_job import run_trace, summarize

    with progress_bar(len(prompts), "tracing") as progress:
        run, edges = run_trace(model, prompts, out=out, **options, progress=progress)
    click.echo(
        f"{run.prompts} prompts, {run.firings} firings ({run.traced_firings} traced), "
        f"{run.edges} edges in {run.seconds:.1f} s -> {out}"
    )
    if top and edges:
        header = ("upstream", "head", "side", "role", "relevance", "prompts", "mean weight",
                  "top SVs")  # fmt: skip
        rows = [
            (r.upstream, r.head, r.side, r.role, f"{r.relevance:.3f}", str(r.prompts),
             f"{r.mean_weight:.3f}", ",".join(map(str, r.top_singular_vectors)))
            for r in summarize(edges, top=top, n_prompts=run.prompts)
        ]  # fmt: skip
        click.echo(aligned([list(header), *map(list, rows)]))


@click.command("ingest", context_settings=SETTINGS)
@add_options(TRACING_OPTIONS)
@store_option(
    "A folder for the embedded store (created if missing), or neo4j://HOST:PORT "
    "(credentials from NEO4J_USER and NEO4J_PASSWORD)."
)
@click.option(
    "--run",
    "run_name",
    default=None,
    help="Run name; rerun the same command to resume [default: MODEL-TASK-N].",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=1,
    help="Trace the batches in this many Ray tasks (on a GPU where a worker has one); "
    "the same graph as one process. Needs headgraph[ray].",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster the shards run on (ray://HEAD:10001, or auto for the one "
    "this machine belongs to) [default: a local one, started for the ingest].",
)
def ingest_command(store_target, run_name, shards, ray_address, **shared):
    """Trace prompts and write the circuit graph to a store (idempotent, resumable)."""
    source = Path(shared["prompts_file"]).stem if shared["prompts_file"] else shared["n_prompts"]
    if run_name is not None and not run_name.strip():
        raise click.UsageError("--run: give a non-empty name, or leave it out for the default")
    if (shards > 1 or ray_address) and importlib.util.find_spec("ray") is None:
        raise click.UsageError(
            "--shards/--ray-address: sharded ingest runs on Ray: pip install 'headgraph[ray]'"
        )
    run_name = run_name or f"{Path(shared['model_spec']).name}-{shared['task']}-{source}"
    model, prompts, options = prepare(**shared)
    from headgraph.ingest.jobs.ingest_job import check_ingest, ingest
    from headgraph.queries.store import open_store

    check_ingest(
        model,
        prompts,
        run=run_name,
        seeds=options["seeds"],
        batch_size=options["batch_size"],
        params=options["params"],
        counterfactuals=options["counterfactuals"],
        shards=shards,
    )  # before the store is opened: bad input leaves no store behind
    with open_store(store_target) as store, progress_bar(len(prompts), run_name) as progress:
        result = ingest(model, prompts, store=store, run=run_name, **options, progress=progress,
                        shards=shards, ray_address=ray_address)  # fmt: skip
    resumed = (
        f" ({result.resumed} of {result.batches} batches already done)" if result.resumed else ""
    )
    click.echo(
        f"run {result.run}: {result.prompts} prompts, {result.firings} firings, "
        f"{result.edges} edges{resumed} in {result.seconds:.1f} s -> {store_target}"
    )


@click.command("train-tiny-ioi", context_settings=SETTINGS)
@click.option("--seed", type=int, default=0, help="Training seed (same seed, same weights).")
@click.option("--steps", type=click.IntRange(min=1), default=3000, help="Optimizer steps.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tiny-ioi.pt"),
    help="Checkpoint to write (its card goes beside it); trace it with --model FILE.pt.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing checkpoint.")
@click.option(
    "--rope", is_flag=True, help="Train tiny-ioi-rope (rotary, RMSNorm, grouped-query) instead."
)
def train_tiny_ioi_command(seed, steps, out, force, rope):
    """Train the tiny-ioi model and write its checkpoint and model card (the bundled one
    is never overwritten)."""
    import time

    from headgraph.ingest import tiny_ioi

    if out.resolve() in (tiny_ioi.CHECKPOINT.resolve(), tiny_ioi.ROPE_CHECKPOINT.resolve()):
        raise click.UsageError("--out: that is the bundled checkpoint; write a new file")
    if out.exists() and not force:
        raise click.UsageError(f"--out {out} exists: choose another file, or pass --force")
    start = time.perf_counter()
    variant = "tiny-ioi-rope" if rope else "tiny-ioi"
    state = tiny_ioi.train(seed=seed, steps=steps, log=click.echo, variant=variant)
    seconds = time.perf_counter() - start
    card = tiny_ioi.make_card(state, seed=seed, steps=steps, seconds=seconds, variant=variant)
    tiny_ioi.save(state, card, out, variant=variant)
    held = card["held_out"]
    click.echo(
        f"trained in {seconds:.0f} s; held-out accuracy {held['accuracy']:.3f}, "
        f"logit diff {held['logit_diff']:.2f}; seeds {card['seeds']['heads']} -> {out}"
    )
    for role, heads in card["roles"].items():
        click.echo(f"  {role}: {', '.join(heads) or '-'}")


COMMANDS = (trace_command, ingest_command, train_tiny_ioi_command)
