"""The checking commands: verify (causal effects of edges, written back) and compare."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import click

from explorer.output import FORMATS, render, to_json
from explorer.query_commands import SETTINGS, reading


@click.command("verify", context_settings=SETTINGS)
@click.option("--store", "store_target", default="./headgraph-db", help="The store.")
@click.option("--run", default=None, help="The run [default: the newest].")
@click.option("--top", type=click.IntRange(min=1), default=10, help="Verify the K strongest edges.")
@click.option("--edge", "edges", multiple=True, help="An edge instead, e.g. 8.6->9.9:query.")
@click.option("--mode", type=click.Choice(["global", "local"]), default="global", help="Where.")
@click.option("--boost", is_flag=True, help="Add the edge's part again instead of removing it.")
@click.option(
    "--metric", default="ioi", help="ioi (logit difference IO - S at END), or FILE.py:FUNCTION."
)
@click.option("--prompts", "max_prompts", type=click.IntRange(min=1), default=None,
              help="Use the run's first N prompts [default: all].")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Prompts per pass.")
@click.option("--model", "model_spec", default=None, help="The model [default: the run's].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--seed", type=int, default=0, help="Seed of the random controls.")
@click.option("--format", "out_format", type=click.Choice(FORMATS), default="table")
def verify_command(store_target, run, top, edges, mode, boost, metric, max_prompts, batch_size,
                   model_spec, device, seed, out_format):  # fmt: skip
    """Measure each edge's causal effect against a random control, and store it on the run."""
    from explorer.cli import progress_bar
    from explorer.run_model import load_run_model
    from ingest.model import ModelError
    from ingest.records import Prompt, Seed, TraceParams
    from ingest.verify import parse_edge, verify_edges
    from queries.effects import strongest_edges, write_effects
    from queries.selection import resolve_run, stored_prompts

    try:
        chosen = [parse_edge(e) for e in edges]
        measure = _metric(metric)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    with reading(store_target, write=True) as store:
        ref = resolve_run(store, run)
        recorded = json.loads(store.run_info(ref.key)["params"])
        if not chosen:
            chosen = [
                parse_edge(f"{u}->{h}:{s}") for u, h, s, _ in strongest_edges(store, ref.key, top)
            ]
        try:
            model = load_run_model(store, ref.model, model_spec, device=device)
            prompts = [
                Prompt(p["id"], p["text"], tuple(p["tokens"]), p["roles"])
                for p in stored_prompts(store, ref.key)
            ][:max_prompts]
            seeds = [Seed.from_name(s) for s in recorded["seeds"]]
            params = TraceParams(
                recorded["attention_threshold"], recorded["signal_frac"], recorded["edge_frac"]
            )
            with progress_bar(len(prompts), f"verifying {len(chosen)} edges") as progress:
                effects = verify_edges(
                    model, prompts, chosen, seeds=seeds, params=params, mode=mode, boost=boost,
                    metric=measure, batch_size=batch_size, seed=seed,
                    progress=lambda n: progress(n, 0),
                )  # fmt: skip
        except (ModelError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        measured = datetime.now(UTC).isoformat(timespec="seconds")
        rows = [
            {
                "upstream": e.edge.upstream,
                "head": e.edge.head,
                "side": e.edge.side,
                "mode": e.mode,
                "boost": e.boost,
                "metric": metric,
                "prompts": e.prompts,
                "clean": e.clean,
                "effect": e.effect,
                "control": e.control,
                "difference": e.difference,
                "stderr": e.stderr,
                "measured": measured,
            }  # fmt: skip
            for e in effects
            if e.prompts
        ]
        write_effects(store, ref.key, rows)
    rows.sort(key=lambda r: (r["difference"], r["upstream"], r["head"]))
    absent = [e.edge.name for e in effects if not e.prompts]
    if out_format == "json":
        click.echo(to_json({"run": ref.key, "effects": rows, "absent": absent}))
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
        click.echo(f"run {ref.key}: {metric} metric, {mode} {verb}, {len(prompts)} prompts")
    click.echo(render(table, out_format) if table else "(no edge occurred in these prompts)")
    if absent and out_format == "table":
        click.echo(f"not in these prompts: {', '.join(absent)}")


def _metric(spec: str):
    """``ioi`` or ``FILE.py:FUNCTION`` as a metric function (log-probs, prompts) -> [batch]."""
    from ingest.verify import ioi_logit_difference

    if spec == "ioi":
        return ioi_logit_difference
    path, _, name = spec.rpartition(":")
    if not path or not Path(path).is_file():
        raise ValueError(f"--metric {spec!r}: use ioi or FILE.py:FUNCTION (an existing file)")
    module_spec = importlib.util.spec_from_file_location("headgraph_user_metric", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise ValueError(f"--metric {spec!r}: {path} has no function {name}")
    return getattr(module, name)


@click.command("compare", context_settings=SETTINGS)
@click.option("--store", "store_target", default="./headgraph-db", help="The store.")
@click.option("--run", default=None, help="The run [default: the newest].")
@click.option(
    "--reference", default="ioi-gpt2", help="ioi-gpt2, tiny-ioi, or a JSON/YAML file of classes."
)
@click.option(
    "--min-prompts", type=click.IntRange(min=1), default=1, help="An edge's fewest prompts."
)
@click.option("--min-share", type=click.FloatRange(0, 1), default=0.0, help="Its least share.")
@click.option("--format", "out_format", type=click.Choice(FORMATS), default="table")
def compare_command(store_target, run, reference, min_prompts, min_share, out_format):
    """Precision, recall and F1 of a run's circuit against a reference circuit."""
    from queries.compare import compare

    with reading(store_target) as store:
        result = compare(
            store, reference=reference, run=run, min_prompts=min_prompts, min_share=min_share
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
        for name, s in (("heads", result.heads), ("edges (with side)", result.edges))
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
