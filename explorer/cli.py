"""The ``headgraph`` command line."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import click

from explorer import query_commands, verify_commands, view_commands
from explorer.output import aligned
from ingest.records import TraceParams, parse_seeds

SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


@click.group(context_settings=SETTINGS)
@click.version_option(package_name="headgraph")
def main() -> None:
    """headgraph: circuits of transformer attention heads by sparse attention decomposition."""


def tracing_options(command):
    """The options shared by ``trace`` and ``ingest``: model, prompts, seeds, thresholds."""
    options = [
        click.option(
            "--model",
            "model_spec",
            default="tiny-ioi",
            help="tiny-ioi, a TransformerLens name (gpt2), a local Hugging Face "
            "folder, or random:PRESET (gpt2-small, tiny).",
        ),
        click.option("--task", type=click.Choice(["ioi"]), default="ioi", help="Prompt task."),
        click.option(
            "--prompts",
            "n_prompts",
            type=click.IntRange(min=1),
            default=256,
            help="Number of prompts to generate.",
        ),
        click.option("--prompt-seed", type=int, default=0, help="Seed of the prompt generator."),
        click.option(
            "--prompts-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="JSON Lines prompts (id, text, roles) instead of "
            "generated ones; checked whole before any work.",
        ),
        click.option(
            "--seeds",
            "seed_heads",
            default=None,
            help="Seed heads, e.g. 9.6,9.9,10.0 or 11.* (default: the model's own).",
        ),
        click.option(
            "--seed-roles",
            default="END:IO",
            help="DEST:SOURCE roles of the seed firings (SOURCE * for any).",
        ),
        click.option(
            "--attention-threshold",
            type=float,
            default=TraceParams.attention_threshold,
            help="A pair fires at this attention weight or more.",
        ),
        click.option(
            "--signal-frac",
            type=float,
            default=TraceParams.signal_frac,
            help="Share of the score that the sparse set S must exceed.",
        ),
        click.option(
            "--edge-frac",
            type=float,
            default=TraceParams.edge_frac,
            help="Share of the positive contributions that the edges must reach.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=32,
            help="Prompts per forward pass (and per store transaction).",
        ),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def prepare(
    *,
    model_spec,
    task,
    n_prompts,
    prompt_seed,
    prompts_file,
    seed_heads,
    seed_roles,
    attention_threshold,
    signal_frac,
    edge_frac,
    batch_size,
    device,
):
    """Model, seeds, prompts and parameters from the shared options (usage errors as such)."""
    from ingest.job import default_seeds, task_prompts
    from ingest.model import load_model

    try:
        params = TraceParams(attention_threshold, signal_frac, edge_frac)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.UsageError("--device cuda: no CUDA device is visible; use --device cpu")
    model = load_model(model_spec, device=device)
    if seed_heads is None:
        seeds = default_seeds(model)
    else:
        seeds = parse_seeds(seed_heads, seed_roles, n_heads=model.n_heads)
    if prompts_file is not None:
        from ingest.prompts_file import read_prompts

        prompts = read_prompts(prompts_file, model.tokenizer)
    else:
        prompts = task_prompts(model, n_prompts, seed=prompt_seed)
    return (
        model,
        prompts,
        {"seeds": seeds, "params": params, "batch_size": batch_size, "task": task},
    )


@main.command("trace", context_settings=SETTINGS)
@tracing_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("traces.jsonl"),
    help="JSON Lines file for the firings, edges and run.",
)
@click.option("--top", type=click.IntRange(min=0), default=10, help="Edges to show in the summary.")
def trace_command(out, top, **shared):
    """Trace prompts and write firings and edges to a JSON Lines file (no store)."""
    from ingest.job import run_trace, summarize
    from ingest.model import ModelError

    try:
        model, prompts, options = prepare(**shared)
        with progress_bar(len(prompts), "tracing") as progress:
            run, edges = run_trace(model, prompts, out=out, **options, progress=progress)
    except (ModelError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"{run.prompts} prompts, {run.firings} firings ({run.traced_firings} traced), "
        f"{run.edges} edges in {run.seconds:.1f} s -> {out}"
    )
    if top and edges:
        click.echo(_table(summarize(edges, top=top)))


@main.command("ingest", context_settings=SETTINGS)
@tracing_options
@click.option(
    "--store",
    "store_target",
    default="./headgraph-db",
    help="A folder for the embedded store (created if missing), or neo4j://HOST:PORT "
    "(credentials from NEO4J_USER and NEO4J_PASSWORD).",
)
@click.option(
    "--run",
    "run_name",
    default=None,
    help="Run name; rerun the same command to resume [default: MODEL-TASK-N].",
)
def ingest_command(store_target, run_name, **shared):
    """Trace prompts and write the circuit graph to a store (idempotent, resumable)."""
    from ingest.ingest_run import ingest
    from ingest.model import ModelError
    from queries.store import StoreError, open_store

    source = Path(shared["prompts_file"]).stem if shared["prompts_file"] else shared["n_prompts"]
    run_name = run_name or f"{Path(shared['model_spec']).name}-{shared['task']}-{source}"
    try:
        model, prompts, options = prepare(**shared)
        store = open_store(store_target)
        try:
            with progress_bar(len(prompts), f"ingesting {run_name}") as progress:
                result = ingest(
                    model, prompts, store=store, run=run_name, **options, progress=progress
                )
        finally:
            store.close()
    except (ModelError, StoreError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    resumed = (
        f" ({result.resumed} of {result.batches} batches already done)" if result.resumed else ""
    )
    click.echo(
        f"run {result.run}: {result.prompts} prompts, {result.firings} firings, "
        f"{result.edges} edges{resumed} in {result.seconds:.1f} s -> {store_target}"
    )


@main.command("train-tiny-ioi", context_settings=SETTINGS)
@click.option("--seed", type=int, default=0, help="Training seed (same seed, same weights).")
@click.option("--steps", type=click.IntRange(min=1), default=3000, help="Optimizer steps.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint path [default: the bundled ingest/models/tiny-ioi.pt].",
)
def train_tiny_ioi_command(seed, steps, out):
    """Train the bundled tiny-ioi model and write its checkpoint and model card."""
    import time

    from ingest import tiny_ioi

    start = time.perf_counter()
    state = tiny_ioi.train(seed=seed, steps=steps, log=click.echo)
    seconds = time.perf_counter() - start
    card = tiny_ioi.make_card(state, seed=seed, steps=steps, seconds=seconds)
    path = out or tiny_ioi.CHECKPOINT
    tiny_ioi.save(state, card, path)
    held = card["held_out"]
    click.echo(
        f"trained in {seconds:.0f} s; held-out accuracy {held['accuracy']:.3f}, "
        f"logit diff {held['logit_diff']:.2f}; seeds {card['seeds']['heads']} -> {path}"
    )
    for role, heads in card["roles"].items():
        click.echo(f"  {role}: {', '.join(heads) or '-'}")


@contextlib.contextmanager
def progress_bar(total: int, label: str):
    """A progress bar over prompts that also shows edges and their rate; quiet off a terminal.

    Yields ``update(prompts_done_now, edges_so_far)``.
    """
    start, edges = time.perf_counter(), [0]

    def show(_):
        seconds = time.perf_counter() - start
        return f"{edges[0]:,} edges, {edges[0] / seconds:,.0f} edges/s" if seconds else ""

    with click.progressbar(
        length=total, label=label, file=_progress_stream(), item_show_func=show
    ) as bar:

        def update(n: int, edges_so_far: int) -> None:
            edges[0] = edges_so_far
            bar.update(n, current_item=edges_so_far)

        yield update


def _progress_stream():
    """The terminal for a progress bar, or a sink when output is not a terminal (CI, pipes)."""
    if sys.stderr.isatty():
        return sys.stderr
    return open(os.devnull, "w")  # noqa: SIM115 - closed with the process


def _table(rows) -> str:
    header = ("upstream", "head", "side", "role", "prompts", "mean weight", "top SVs")
    return aligned(
        [header]
        + [
            (
                r.upstream,
                r.head,
                r.side,
                r.role,
                str(r.prompts),
                f"{r.mean_weight:.3f}",
                ",".join(map(str, r.top_singular_vectors)),
            )
            for r in rows
        ]
    )


for _command in query_commands.COMMANDS + view_commands.COMMANDS + verify_commands.COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    main()
