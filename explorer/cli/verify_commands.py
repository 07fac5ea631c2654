"""The checking commands: verify (causal effects of edges, written back) and compare."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from headgraph.errors import InputError
from headgraph.explorer.cli.common import (
    FORMAT_OPTION,
    MIN_RELEVANCE_OPTION,
    RUN_OPTION,
    SETTINGS,
    progress_bar,
    reading,
    store_option,
)
from headgraph.explorer.output import render, to_json
from headgraph.names import parse_edge


@click.command("verify", context_settings=SETTINGS)
@store_option()
@RUN_OPTION
@click.option("--top", type=click.IntRange(min=1), default=10, help="Verify the K strongest edges.")
@click.option(
    "--edge",
    "edges",
    multiple=True,
    help="An edge instead, UP-HEAD:SIDE, e.g. 8.6-9.9:query (or '8.6->9.9:query', quoted).",
)
@click.option("--mode", type=click.Choice(["global", "local"]), default="global", help="Where.")
@click.option("--boost", is_flag=True, help="Add the edge's part again instead of removing it.")
@click.option(
    "--metric",
    default="task",
    help="task (the run's task's: ioi for IOI, probability for greater-than, else answer), "
    "ioi (logit difference IO - S at END), answer (the answer's log-prob, less the wrong "
    "answer's), probability (the right tokens' probability less the wrong ones'), or "
    "FILE.py:FUNCTION.",
)
@click.option("--prompts", "max_prompts", type=click.IntRange(min=1), default=None,
              help="Use the run's first N prompts [default: all].")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Prompts per pass.")
@click.option("--model", "model_spec", default=None, help="The model [default: the run's].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--seed", type=int, default=0, help="Seed of the random controls.")
@FORMAT_OPTION
def verify_command(store_target, run, top, edges, mode, boost, metric, max_prompts, batch_size,
                   model_spec, device, seed, out_format):  # fmt: skip
    """Measure each edge's causal effect against a random control, and store it on the run."""
    try:
        chosen = [parse_edge(e) for e in edges]
        measure = _metric(metric)
    except InputError as error:
        raise click.UsageError(str(error)) from None
    with reading(store_target, write=True) as store:
        from headgraph.queries.selection import resolve_run

        n_prompts = resolve_run(store, run).prompts  # an unknown run is refused here, at once
        from headgraph.ingest.jobs.verify_job import verify_run  # torch, once the input is good

        with progress_bar(min(max_prompts or n_prompts, n_prompts), "verifying") as progress:
            done = verify_run(
                store, run=run, edges=chosen, top=top, mode=mode, boost=boost, metric=measure,
                metric_name=metric, max_prompts=max_prompts, batch_size=batch_size,
                model_spec=model_spec, device=device, seed=seed,
                progress=lambda n: progress(n, 0),
            )  # fmt: skip
    rows, absent = list(done.rows), done.absent
    if out_format == "json":
        click.echo(to_json({"run": done.run, "effects": rows, "absent": absent}))
        return
    table = [
        {
            "edge": f"{r['upstream']}->{r['head']}:{r['side']}",
            "prompts": r["prompts"],
            "clean": r["clean"],
            "effect": r["effect"],
            "control": r["control"],
            "difference": r["difference"],
            "stderr": r["stderr"],
        }  # fmt: skip
        for r in rows
    ]
    if out_format == "table":
        verb = "boosting" if boost else "ablating"
        click.echo(f"run {done.run}: {done.metric} metric, {mode} {verb}, {done.prompts} prompts")
    click.echo(render(table, out_format) if table else "(no edge occurred in these prompts)")
    if absent and out_format == "table":
        click.echo(f"not in these prompts: {', '.join(absent)}")


def _metric(spec: str):
    """``FILE.py:FUNCTION`` as a metric function (log-probs, prompts) -> [batch]; a built-in
    metric's name (``task``, ``ioi``, ``answer``) as it is, for the job to resolve."""
    if spec in ("task", "ioi", "answer", "probability"):
        return spec
    path, _, name = spec.rpartition(":")
    if not path or not Path(path).is_file():
        raise InputError(
            f"--metric {spec!r}: use task, ioi, answer, probability or FILE.py:FUNCTION "
            "(an existing file)"
        )
    module_spec = importlib.util.spec_from_file_location("headgraph_user_metric", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"--metric {spec!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise InputError(f"--metric {spec!r}: {path} has no function {name}")
    return getattr(module, name)


@click.command("compare", context_settings=SETTINGS)
@store_option()
@RUN_OPTION
@click.option(
    "--reference",
    default=None,
    help="ioi-gpt2, tiny-ioi, or a JSON/YAML file of classes [default: the run's model's].",
)
@click.option(
    "--min-prompts", type=click.IntRange(min=1), default=1, help="An edge's fewest prompts."
)
@click.option("--min-share", type=click.FloatRange(0, 1), default=0.0, help="Its least share.")
@MIN_RELEVANCE_OPTION
@FORMAT_OPTION
def compare_command(
    store_target, run, reference, min_prompts, min_share, min_relevance, out_format
):
    """Precision, recall and F1 of a run's circuit against a reference circuit."""
    from headgraph.queries.compare import compare

    with reading(store_target) as store:
        result = compare(
            store,
            reference=reference,
            run=run,
            min_prompts=min_prompts,
            min_share=min_share,
            min_relevance=min_relevance,
        )
    if out_format == "json":
        click.echo(to_json(result))
        return
    rows = [
        {
            "over": name,
            "precision": s.precision,
            "recall": s.recall,
            "F1": s.f1,
            "found": s.true_positives,
            "in run": s.predicted,
            "in reference": s.reference,
        }  # fmt: skip
        for name, s in (
            ("heads", result.heads),
            (f"edges ({', '.join(result.edge_sides)} sides)", result.edges),
        )
    ]
    if out_format == "table":
        click.echo(f"run {result.run} against {result.reference}")
    click.echo(render(rows, out_format))
    if out_format == "table":
        classes = [{"class": c, "heads found": f"{n} of {m}"} for c, n, m in result.classes]
        click.echo("\n" + render(classes, "table"))
        missing = ", ".join(result.heads.missing[:12]) or "none"
        click.echo(f"\nreference heads not in the run: {missing}")


COMMANDS = (verify_command, compare_command)
