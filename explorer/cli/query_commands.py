"""The query commands: paths, redundancy, features, cypher, export (and runs).

Each one opens the store read-only, calls one function of ``queries/`` and
prints its result as a table (``--format json|csv`` for scripts). Errors the
user can fix (an unknown run or head, a bad statement) exit with status 1 and
one line that says what to do; an empty answer is not an error.
"""

from __future__ import annotations

from pathlib import Path

import click

from headgraph.explorer.cli.common import (
    FORMAT_OPTION,
    RUN_OPTION,
    SETTINGS,
    add_options,
    reading,
    store_option,
)
from headgraph.explorer.output import render, to_json
from headgraph.names import EDGE_SIDES

SIDES = click.Choice([*EDGE_SIDES, "any"])
query_options = add_options([store_option(), RUN_OPTION, FORMAT_OPTION])


@click.command("paths", context_settings=SETTINGS)
@click.option(
    "--to",
    "target",
    required=True,
    help="The head routes lead into (9.9, L9H9), or logits (a run seeded from the prediction).",
)
@click.option("--from", "source", default=None, help="Only routes starting at this component.")
@click.option("--role", default=None, help="Only the target's firings at this destination role.")
@click.option("--side", type=SIDES, default="any", help="Side of the hop into the target.")
@click.option("--max-hops", type=click.IntRange(min=1), default=4, help="Longest route.")
@click.option("--min-prompts", type=click.IntRange(min=1), default=1, help="Fewest prompts.")
@click.option("--top", type=click.IntRange(min=1), default=10, help="Routes to show.")
@click.option("--prompt", default=None, help="Only this prompt (by id).")
@click.option(
    "--score",
    type=click.Choice(["product", "min"]),
    default="product",
    help="Per prompt: product or minimum of the hops' shares.",
)
@query_options
def paths_command(store_target, run, out_format, target, source, **options):
    """The strongest routes into a head, with the prompts in which each occurs whole."""
    from headgraph.queries.paths import paths

    with reading(store_target) as store:
        result = paths(store, to=target, from_=source, run=run, **options)
    if out_format == "json":
        click.echo(to_json(result))
        return
    if not result.routes:
        click.echo(f"no routes into {result.target} in run {result.run} with these filters")
        return
    rows = [
        {
            "rank": i + 1,
            "score": r.score,
            "prompts": r.prompts,
            "share": r.share_of_prompts,
            "mean score": r.mean_score,
            "route": r.text,
        }
        for i, r in enumerate(result.routes)
    ]
    if out_format == "table":
        click.echo(
            f"routes into {result.target}, run {result.run}; score: {result.score} of the hops' "
            "shares, summed over prompts / all prompts"
        )
    click.echo(render(rows, out_format))
    if not result.exhaustive:
        click.echo("(the search stopped at its limit: narrow it with --from, --max-hops or --role)")


@click.command("redundancy", context_settings=SETTINGS)
@click.option("--to", "target", required=True, help="The head (9.9, L9H9).")
@click.option("--role", default=None, help="Only the target's firings at this destination role.")
@click.option("--side", type=SIDES, default="any", help="Side of the hop into the target.")
@click.option("--prompt", default=None, help="Only this prompt (by id).")
@query_options
def redundancy_command(store_target, run, out_format, target, **options):
    """Independent routes into a head, substitute components, and critical ones."""
    from headgraph.queries.redundancy import redundancy

    with reading(store_target) as store:
        result = redundancy(store, to=target, run=run, **options)
    if out_format == "json":
        click.echo(to_json(result))
        return
    c = result.connectivity
    if not c.prompts:
        click.echo(f"{result.target} has no traced routes in run {result.run} with these filters")
        return
    connectivity = [{"routes": k, "prompts": n} for k, n in c.counts]
    substitutes = [
        {
            "side": g.side,
            "singular vector": g.singular_vector,
            "members (prompts)": " ".join(f"{m}({n})" for m, n in g.members),
            "prompts any": g.prompts_any,
            "prompts all": g.prompts_all,
        }
        for g in result.substitutes
    ]
    critical = [
        {"component": x.component, "critical in": x.critical_prompts, "share": x.share}
        | {"on routes in": x.present_prompts}
        for x in result.criticality
    ]
    if out_format == "table":
        click.echo(
            f"{result.target}, run {result.run}: node-disjoint routes per prompt over "
            f"{c.prompts} prompts: min {c.minimum}, median {c.median:g}, mean {c.mean:.2f}, "
            f"max {c.maximum}"
        )
    sections = (
        ("node-disjoint routes", connectivity),
        ("substitutes", substitutes),
        ("critical components", critical),
    )
    for title, rows in sections:
        click.echo(f"\n{title}:" if out_format == "table" else "")
        click.echo(render(rows, out_format) if rows else "(none)")


@click.command("features", context_settings=SETTINGS)
@click.option("--head", default=None, help="The head whose singular vectors to list (9.9).")
@click.option("--sv", default=None, help="One singular vector, HEAD:INDEX (9.9:17).")
@click.option("--side", type=SIDES, default="any", help="Writers on this side.")
@click.option("--top", type=click.IntRange(min=1), default=10, help="Singular vectors to show.")
@click.option(
    "--tokens",
    type=click.IntRange(min=0),
    default=5,
    help="Vocabulary tokens per singular vector (0: none).",
)
@click.option(
    "--model",
    "model_spec",
    default=None,
    help="Compute the tokens from this model instead of reading them from the store.",
)
@query_options
def features_command(store_target, run, out_format, head, sv, side, top, tokens, model_spec):
    """The singular vectors a head uses when it fires, their writers and their tokens."""
    from headgraph.queries.features import features, singular_vector

    if (head is None) == (sv is None):
        raise click.UsageError("give one of --head 9.9 or --sv 9.9:17")
    with reading(store_target) as store:
        if sv is not None:
            report = singular_vector(store, sv=sv, run=run)
            found, model = [report.feature], report_model(store, run)
        else:
            result = features(store, head=head, run=run, side=side, top=top)
            found, model = list(result.features), result.model
        words, note = _tokens(store, found, model, model_spec, tokens, side)
    if out_format == "json":
        payload = report if sv is not None else result
        click.echo(to_json({"result": payload, "tokens": words, "note": note}))
        return
    if not found or not found[0].firings:
        click.echo("no firings use it in this run" if sv else "the head never fires in this run")
        return
    rows = [
        {
            "sv": f.name,
            "sigma": f.sigma,
            "firings": f.firings,
            "share": f.share_of_firings,
            "prompts": f.prompts,
            "mean term": f.mean_term,
            "writers (side, firings)": " ".join(
                f"{w.component}:{w.side[0]}({w.firings})" for w in f.writers[:4]
            ),
            "tokens": " ".join(f"{t}({v:+.2f})" for t, v in words.get(f.name, [])),
        }
        for f in found
    ]
    click.echo(render(rows, out_format))
    if sv is not None and out_format == "table":
        readers = [{"reader": h, "side": s, "firings": n} for h, s, n in report.readers]
        click.echo("\nread by:\n" + (render(readers, "table") if readers else "(no traced reader)"))
        shown = ", ".join(report.prompt_ids[:10])
        more = len(report.prompt_ids) - 10
        click.echo(f"\nprompts: {shown}" + (f" and {more} more" if more > 0 else ""))
    if note:
        click.echo(note, err=True)


def report_model(store, run) -> str:
    from headgraph.queries.selection import resolve_run

    return resolve_run(store, run).model


def _tokens(store, found, model_name, model_spec, n, side):
    """Top tokens per singular vector (``{name: [(token, projection)]}``) and a note, if any.

    From the store; from a model only when ``--model`` names one.
    """
    if not n or not found:
        return {}, None
    read_on = "query" if side == "query" else "key"
    if model_spec is None:
        from headgraph.queries.features import feature_tokens

        words = feature_tokens(store, model_name, found, side=read_on, n=n)
        if words is None:
            return {}, "tokens: this store predates stored tokens; re-ingest, or pass --model"
        return words, None
    from headgraph.ingest.jobs.run_model import load_run_model, model_feature_tokens

    model = load_run_model(store, model_name, model_spec)
    return model_feature_tokens(model, found, side=read_on, n=n), None


@click.command("cypher", context_settings=SETTINGS)
@click.argument("statement")
@click.option("--param", "params", multiple=True, help="A parameter NAME=VALUE (JSON or text).")
@click.option("--write", is_flag=True, help="Allow statements that change the store.")
@store_option()
@FORMAT_OPTION
def cypher_command(statement, params, write, store_target, out_format):
    """Run a Cypher statement on the store (read-only unless --write)."""
    from headgraph.errors import QueryError
    from headgraph.queries.cypher import parse_params, run_cypher

    try:
        values = parse_params(params)
    except QueryError as error:
        raise click.UsageError(str(error)) from None
    with reading(store_target, write=write) as store:
        rows = run_cypher(store, statement, values, write=write)
    if not rows:
        click.echo("[]" if out_format == "json" else "(no rows)")
        return
    click.echo(render(rows, out_format))


EXPORTS = {  # format -> (what it writes, its default name)
    "graphml": ("a folder: circuit.graphml and prompts/ID.graphml", "{run}-graphml"),
    "circuit-tracer": ("a folder of graph JSON for circuit-tracer's viewer", "{run}-graphs"),
    "node-link": ("the circuit as networkx node-link JSON", "{run}.node-link.json"),
    "json": ("the whole run, every node and relationship", "{run}.json"),
    "csv": ("a folder for neo4j-admin database import", "{run}-csv"),
}


@click.command("export", context_settings=SETTINGS)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(list(EXPORTS)),
    default="graphml",
    help="; ".join(f"{name}: {what}" for name, (what, _) in EXPORTS.items()) + ".",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where [default: RUN-graphml/, RUN-graphs/, RUN.node-link.json, RUN.json, RUN-csv/].",
)
@click.option(
    "--include-untraced", is_flag=True, help="graphml: keep firings that tracing never reached."
)
@store_option()
@RUN_OPTION
def export_command(out_format, out, include_untraced, store_target, run):
    """Write a run where other tools read it: GraphML, circuit-tracer's viewer, networkx
    node-link JSON, the whole graph as JSON, or CSV that Neo4j imports."""
    from headgraph.queries.export import export_run
    from headgraph.queries.selection import resolve_run

    with reading(store_target) as store:
        name = resolve_run(store, run).key
        default = Path(EXPORTS[out_format][1].format(run=name))
        summary = export_run(
            store, format=out_format, out=out or default, run=name,
            include_untraced=include_untraced,
        )  # fmt: skip
    click.echo(
        f"run {summary.run}: {summary.nodes} nodes, {summary.relationships} relationships "
        f"-> {summary.path}"
        + (f" (load with {summary.path}/import.sh)" if out_format == "csv" else "")
    )


COMMANDS = (
    paths_command,
    redundancy_command,
    features_command,
    cypher_command,
    export_command,
)
