"""The picture commands: explore (the browser view), render (the circuit to a file), plot."""

from __future__ import annotations

from pathlib import Path

import click

from headgraph.explorer.cli.common import (
    MIN_RELEVANCE_OPTION,
    RUN_OPTION,
    SETTINGS,
    reading,
    store_option,
)

STORE = store_option()
RUN = RUN_OPTION


def circuit_filters(command):
    """``--min-prompts``, ``--min-share``, ``--min-relevance``, ``--top`` and ``--prompt``."""
    options = [
        click.option("--min-prompts", type=click.IntRange(min=1), default=1, help="Fewest prompts"),
        click.option("--min-share", type=click.FloatRange(0, 1), default=0.0, help="Least share"),
        MIN_RELEVANCE_OPTION,
        click.option("--top", type=click.IntRange(min=1), default=60, help="Most edges drawn."),
        click.option("--prompt", default=None, help="One prompt's own graph."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("explore", context_settings=SETTINGS)
@STORE
@RUN
@click.option("--port", type=click.IntRange(0, 65535), default=8765, help="Port (0: any free).")
@click.option("--host", default="127.0.0.1", help="Address to bind (keep it local).")
@click.option(
    "--allow-labels",
    is_flag=True,
    help="Let the page edit labels (a write mode; the default view is read-only).",
)
def explore_command(store_target, run, port, host, allow_labels):
    """Serve an interactive view of a run's circuit in the browser (read-only unless
    --allow-labels)."""
    from headgraph.explorer.web.server import Explorer, is_loopback, make_server

    if not is_loopback(host):
        click.echo(
            f"warning: --host {host} serves the run to every machine that can reach this one; "
            "use 127.0.0.1 unless that is what you want",
            err=True,
        )

    def label_writer():  # a short write per label, so an ingest elsewhere is not held off
        return reading(store_target, write=True)

    with reading(store_target) as store:
        app = Explorer(store, run, label_writer=label_writer if allow_labels else None)
        try:
            server = make_server(app, host=host, port=port)
        except OSError as error:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({error.strerror}); choose another --port"
            ) from None
        click.echo(f"run {app.run}: open http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
        if allow_labels:
            click.echo("labels can be edited in the page (--allow-labels)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


@click.command("render", context_settings=SETTINGS)
@STORE
@RUN
@circuit_filters
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("circuit.svg"),
    help=".svg, .png, or .html (self-contained, interactive).",
)
def render_command(store_target, run, min_prompts, min_share, min_relevance, top, prompt, out):
    """Draw a run's circuit (or one prompt's graph) to an SVG, PNG or HTML file."""
    from headgraph.explorer.web.figures import FORMATS, render_circuit
    from headgraph.queries.circuit import circuit

    if out.suffix.lower() not in FORMATS:
        raise click.UsageError(f"--out {out}: the file must end in .svg, .png or .html")
    with reading(store_target) as store:
        found = circuit(
            store,
            run=run,
            min_prompts=min_prompts,
            min_share=min_share,
            min_relevance=min_relevance,
            top=top,
            prompt=prompt,
        )
    if not found.edges:
        raise click.ClickException(f"run {found.run} has no edges with these filters: lower them")
    render_circuit(found, out)
    click.echo(f"run {found.run}: {len(found.nodes)} components, {len(found.edges)} edges -> {out}")


@click.command("plot", context_settings=SETTINGS)
@STORE
@RUN
@click.option(
    "--what",
    type=click.Choice(["sv-counts", "sv-usage"]),
    required=True,
    help="sv-counts: histograms of |S| per head; sv-usage: singular vectors in S per head.",
)
@click.option("--heads", default=None, help="Heads to plot, e.g. 1.0,1.1 [default: the busiest].")
@click.option("--max-heads", type=click.IntRange(min=1), default=8, help="Busiest heads shown.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="[WHAT.png]"
)
def plot_command(store_target, run, what, heads, max_heads, out):
    """Draw the paper's figures for a run: |S| per head, or singular-vector usage."""
    from headgraph.explorer.web.figures import plot_singular_vector_usage, plot_sparse_set_sizes
    from headgraph.queries.selection import resolve_run
    from headgraph.queries.stats import singular_vector_usage, sparse_set_sizes

    out = out or Path(f"{what}.png")
    with reading(store_target) as store:
        ref = resolve_run(store, run)
        sizes = sparse_set_sizes(store, run=ref.key)
        if heads:
            chosen = [ref.head(h) for h in heads.split(",")]
        else:
            chosen = sorted(sizes, key=lambda h: (-sum(sizes[h].values()), h))[:max_heads]
        if not chosen:
            raise click.ClickException(f"run {ref.key} has no firings to plot")
        if what == "sv-counts":
            picked = {h: sizes[h] for h in chosen if h in sizes}
            if not picked:
                raise click.ClickException(f"{', '.join(chosen)} never fire in run {ref.key}")
            plot_sparse_set_sizes(picked, out, heads=len(picked), title=f"|S| per head, {ref.key}")
        else:
            usage = singular_vector_usage(store, heads=chosen, run=ref.key)
            plot_singular_vector_usage(usage, out, title=f"singular-vector usage, {ref.key}")
    click.echo(f"run {ref.key}: {what} for {', '.join(chosen)} -> {out}")


COMMANDS = (explore_command, render_command, plot_command)
