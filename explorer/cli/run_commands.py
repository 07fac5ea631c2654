"""Runs as a whole: list them (or those that use an edge), compare two, index one."""

from __future__ import annotations

import click

from headgraph.explorer.cli.common import FORMAT_OPTION, SETTINGS, reading, store_option
from headgraph.explorer.output import render, to_json


@click.command("runs", context_settings=SETTINGS)
@click.option("--edge", default=None, help="Only runs whose circuit has this edge, UP-HEAD:SIDE.")
@store_option()
@FORMAT_OPTION
def runs_command(edge, store_target, out_format):
    """List the runs in a store, newest first (or those that use an edge, most prompts first)."""
    from headgraph.errors import InputError
    from headgraph.names import parse_edge

    try:
        chosen = parse_edge(edge) if edge else None
    except InputError as error:
        raise click.UsageError(str(error)) from None
    with reading(store_target) as store:
        if chosen is None:
            rows = store.runs()
        else:
            from headgraph.queries.across import runs_with_edge

            rows = runs_with_edge(store, chosen)
    if not rows and out_format == "table":
        click.echo(f"no runs in {store_target}" + (f" use {chosen.name}" if chosen else ""))
        return
    click.echo(render(rows, out_format))


@click.command("diff", context_settings=SETTINGS)
@click.argument("run_a")
@click.argument("run_b")
@click.option("--min-prompts", type=click.IntRange(min=1), default=1, help="Fewest prompts.")
@click.option(
    "--min-change",
    type=click.FloatRange(0, 1),
    default=0.05,
    help="Change in share of prompts (or in effect) that counts as changed.",
)
@click.option(
    "--show",
    default="gained,lost,changed",
    help="Which edges to list: gained, lost, changed, same (comma-separated).",
)
@store_option()
@FORMAT_OPTION
def diff_command(run_a, run_b, min_prompts, min_change, show, store_target, out_format):
    """Compare run B with run A: heads and edges gained, lost and changed."""
    from headgraph.queries.diff import STATUSES, diff

    wanted = [s.strip() for s in show.split(",") if s.strip()]
    if not wanted or set(wanted) - set(STATUSES):
        raise click.UsageError(f"--show {show!r}: choose from {', '.join(STATUSES)}")
    with reading(store_target) as store:
        result = diff(store, run_a, run_b, min_prompts=min_prompts, min_change=min_change)
    if out_format == "json":
        click.echo(to_json(result))
        return
    rows = [
        {"status": e.status, "edge": e.name, "share A": e.share_a, "share B": e.share_b,
         "change": e.change, "mean share A": e.mean_share_a, "mean share B": e.mean_share_b,
         "effect A": e.effect_a, "effect B": e.effect_b}
        for e in result.edges
        if e.status in wanted
    ]  # fmt: skip
    if out_format == "table":
        counts = ", ".join(f"{result.count(s)} {s}" for s in STATUSES)
        click.echo(f"run {result.run_b} against run {result.run_a}: edges {counts}")
        heads = (("heads gained", result.heads_gained), ("heads lost", result.heads_lost))
        for label, found in heads:
            click.echo(f"{label}: {', '.join(found) or 'none'}")
    click.echo(render(rows, out_format) if rows else "(no edges with that status)")


@click.command("index", context_settings=SETTINGS)
@click.option("--run", default=None, help="The run (default: the newest).")
@store_option()
def index_command(run, store_target):
    """Write a run's index, which keeps `paths`, the explorer's circuit and `redundancy`
    fast on large runs (an ingest writes it; runs ingested before a part of it existed
    lack that part, and read the whole cone instead)."""
    from headgraph.queries.index_build import write_index

    with reading(store_target, write=True) as store:
        nodes = write_index(store, run)
    click.echo(f"indexed the edges into {nodes:,} nodes")


COMMANDS = (runs_command, diff_command, index_command)
