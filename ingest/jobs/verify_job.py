"""The verify job: a stored run's edges measured causally and written back as Effect nodes.

The run's own model, prompts, seeds and thresholds are read back from the
store, so the edges measured are the ones the run traced. Shared by
``headgraph verify`` and :func:`headgraph.verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from headgraph.errors import InputError
from headgraph.ingest.causal.verify import EdgeEffect, Metric, verify_edges
from headgraph.ingest.core.params import RunParams
from headgraph.ingest.core.records import Prompt
from headgraph.ingest.jobs.run_model import load_run_model
from headgraph.names import EdgeKey, parse_edge
from headgraph.queries.effects import strongest_edges, write_effects
from headgraph.queries.selection import resolve_run, stored_prompts
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class Verification:
    """What a verify job measured.

    Attributes:
        run: The run.
        prompts: Prompts measured on.
        effects: One per edge asked for, in the order asked (``prompts`` 0: absent).
        rows: The stored Effect rows of the edges present, most negative difference first.
        metric: The metric's name (``ioi``, ``answer``, a function's name).
    """

    run: str
    prompts: int
    effects: tuple[EdgeEffect, ...]
    rows: tuple[dict, ...]
    metric: str = "ioi"

    @property
    def absent(self) -> list[str]:
        """The edges that occurred in none of the prompts."""
        return [e.edge.name for e in self.effects if not e.prompts]


def verify_run(
    store: GraphStore,
    *,
    run: str | None = None,
    edges: Sequence[str | EdgeKey] = (),
    top: int = 10,
    mode: str = "global",
    boost: bool = False,
    metric: Metric | str | None = None,
    metric_name: str | None = None,
    max_prompts: int | None = None,
    batch_size: int = 32,
    model_spec: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    write: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Measure edges of a stored run (``edges``, or its ``top`` strongest) and store the effects.

    Raises:
        QueryError: unknown run. ModelError: the run's model cannot be loaded or differs.
        InputError: a malformed edge, or prompts without the metric's role.
    """
    from headgraph.ingest.causal.verify import METRICS, TASK_METRICS

    ref = resolve_run(store, run)
    if metric is None or isinstance(metric, str):  # a built-in one, by name
        metric_name = metric or "task"
        if metric_name == "task":
            task = (store.run_info(ref.key) or {}).get("task")
            metric_name = TASK_METRICS.get(str(task), "answer")
        if metric_name not in METRICS:
            raise InputError(f"metric {metric_name!r}: use task, {', '.join(METRICS)}")
        metric = METRICS[metric_name]
    name: str = metric_name or getattr(metric, "__name__", "custom")
    recorded = RunParams.from_json((store.run_info(ref.key) or {})["params"])
    chosen = [e if isinstance(e, EdgeKey) else parse_edge(e) for e in edges]
    if not chosen:
        chosen = [EdgeKey(u, h, s) for u, h, s, _ in strongest_edges(store, ref.key, top)]
    model = load_run_model(store, ref.model, model_spec, device=device)
    answers = {  # a run seeded from the prediction recorded each prompt's answers
        r["prompt"]: {
            "answer": None if r["answer"] < 0 else r["answer"],
            "wrong": None if r["wrong"] < 0 else r["wrong"],
            "answer_set": tuple(r["answer_set"] or ()),
            "wrong_set": tuple(r["wrong_set"] or ()),
        }
        for r in store.query_if_present(
            "MATCH (r:Prediction) WHERE r.run = $run RETURN r.prompt AS prompt, "
            "r.answer AS answer, r.wrong AS wrong, r.answer_set AS answer_set, "
            "r.wrong_set AS wrong_set",
            {"run": ref.key},
        )
    }
    stored = stored_prompts(store, ref.key)[:max_prompts]
    prompts = [
        Prompt(p["id"], p["text"], tuple(p["tokens"]), p["roles"], **answers.get(p["id"], {}))
        for p in stored
    ]
    counterfactuals = None
    if recorded.params.baseline == "counterfactual":  # stored with the prompts
        counterfactuals = [
            Prompt(f"{p['id']}-counterfactual", "", tuple(p["counterfactual"]), p["roles"])
            for p in stored
        ]
    if recorded.params.baseline == "mean":  # its means are over the run's own batches
        batch_size = recorded.batch_size
    effects = verify_edges(
        model, prompts, chosen, seeds=recorded.seeds, params=recorded.params, mode=mode,
        boost=boost, metric=metric, batch_size=batch_size, seed=seed,
        progress=progress, counterfactuals=counterfactuals,
    )  # fmt: skip
    measured = datetime.now(UTC).isoformat(timespec="seconds")
    rows = [
        {"upstream": e.edge.upstream, "head": e.edge.head, "side": e.edge.side, "mode": e.mode,
         "boost": e.boost, "metric": name, "prompts": e.prompts, "clean": e.clean,
         "effect": e.effect, "control": e.control, "difference": e.difference,
         "stderr": e.stderr, "measured": measured}
        for e in effects
        if e.prompts
    ]  # fmt: skip
    if write:
        write_effects(store, ref.key, rows)
    rows.sort(key=lambda r: (r["difference"], r["upstream"], r["head"]))
    return Verification(ref.key, len(prompts), tuple(effects), tuple(rows), name)
