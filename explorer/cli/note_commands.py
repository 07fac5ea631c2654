"""People's notes in the store: label components, singular vectors and edges; save circuits."""

from __future__ import annotations

import click

from headgraph.explorer.cli.common import FORMAT_OPTION, RUN_OPTION, SETTINGS, reading, store_option
from headgraph.explorer.output import render, to_json

AUTHOR = click.option("--author", default=None, help="Who [default: your login name].")


@click.command("label", context_settings=SETTINGS)
@click.argument("target")
@click.argument("text", required=False)
@click.option("--remove", is_flag=True, help="Remove the target's label instead.")
@AUTHOR
@store_option()
@RUN_OPTION
def label_command(target, text, remove, author, store_target, run):
    """Label a head or component (1.0), a singular vector (1.0:0) or an edge (0.2-1.0:query)
    of the run's model: headgraph label 1.0 "name mover"."""
    from headgraph.queries.notes import remove_label, set_label

    if remove == bool(text):
        raise click.UsageError("give TARGET and TEXT, or TARGET and --remove")
    with reading(store_target, write=True) as store:
        if remove:
            found = remove_label(store, target=target, run=run)
            click.echo(f"{target}: label removed" if found else f"{target} had no label")
            return
        label = set_label(store, target=target, text=text, run=run, author=author)
    click.echo(f"{label.target} ({label.kind.replace('_', ' ')}): {label.text!r}, {label.author}")


@click.command("labels", context_settings=SETTINGS)
@click.option("--text", default=None, help="The heads with this label, and the runs that use each.")
@store_option()
@RUN_OPTION
@FORMAT_OPTION
def labels_command(text, store_target, run, out_format):
    """The labels on the run's model (or, with --text, which labelled heads every run uses)."""
    from headgraph.queries.notes import heads_labelled, labels

    with reading(store_target) as store:
        rows = (
            [r | {"runs": ", ".join(r["runs"])} for r in heads_labelled(store, text)]
            if text
            else [vars(label) for label in labels(store, run=run)]
        )
    if not rows:
        click.echo("[]" if out_format == "json" else "(no labels)")
        return
    click.echo(render(rows, out_format))


@click.command("save-circuit", context_settings=SETTINGS)
@click.argument("name")
@click.option("--edge", "edges", multiple=True, help="An edge of the run, UP-HEAD:SIDE.")
@click.option("--paths-to", default=None, help="Or: the edges of the routes into this head.")
@click.option("--top", type=click.IntRange(min=1), default=5, help="Routes, with --paths-to.")
@click.option("--note", default="", help="What the circuit is.")
@AUTHOR
@store_option()
@RUN_OPTION
def save_circuit_command(name, edges, paths_to, top, note, author, store_target, run):
    """Save a named set of a run's edges: given, or those of the strongest routes into a head."""
    from headgraph.queries.notes import save_circuit

    if bool(edges) == bool(paths_to):
        raise click.UsageError("give --edge (one or more) or --paths-to HEAD")
    with reading(store_target, write=True) as store:
        chosen = list(edges)
        if paths_to:
            from headgraph.queries.paths import paths

            found = paths(store, to=paths_to, run=run, top=top)
            chosen = [f"{h.upstream}-{h.downstream.partition('@')[0]}:{h.side}"
                      for r in found.routes for h in r.hops]  # fmt: skip
        saved = save_circuit(store, name=name, edges=chosen, run=run, note=note, author=author)
    click.echo(f"saved {saved.name!r} ({len(saved.edges)} edges of run {saved.run})")


@click.command("circuits", context_settings=SETTINGS)
@click.argument("name", required=False)
@store_option()
@RUN_OPTION
@FORMAT_OPTION
def circuits_command(name, store_target, run, out_format):
    """The run's saved circuits, or one of them with its edges."""
    from headgraph.queries.notes import saved_circuits

    with reading(store_target) as store:
        found = saved_circuits(store, run=run)
    if name is not None:
        chosen = [c for c in found if c.name == name]
        if not chosen:
            raise click.ClickException(f"no saved circuit {name!r} (see `headgraph circuits`)")
        if out_format == "json":
            click.echo(to_json(chosen[0]))
            return
        click.echo(render([{"edge": e} for e in chosen[0].edges], out_format))
        return
    rows = [{"name": c.name, "edges": len(c.edges), "note": c.note, "author": c.author,
             "created": c.created} for c in found]  # fmt: skip
    click.echo(render(rows, out_format) if rows else "(no saved circuits)")


COMMANDS = (label_command, labels_command, save_circuit_command, circuits_command)
