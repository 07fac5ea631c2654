"""The trace job: model -> prompts -> firings and edges -> a JSON Lines file.

One line per record, ``{"type": "firing" | "edge" | "run", ...}``; the last
line is the run, with the model, the task, every parameter and the counts. The
file is written under a temporary name and renamed when complete, so a killed
job never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from headgraph.errors import InputError
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.records import Edge, Prompt, Seed, parse_seeds
from headgraph.ingest.core.trace import trace

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model

# Seeds that the literature gives for known models: GPT-2 small's name movers (METHOD.md 5).
KNOWN_SEEDS = {
    "gpt2": ("9.6,9.9,10.0", "END:IO"),
    "gpt2-small": ("9.6,9.9,10.0", "END:IO"),
}


@dataclass(frozen=True)
class TraceRun:
    """What a trace job did, as recorded on the run line."""

    model: str
    task: str
    prompts: int
    seeds: tuple[str, ...]
    params: TraceParams
    batch_size: int
    firings: int
    traced_firings: int
    edges: int
    seconds: float


def default_seeds(model: Model, *, roles: str | None = None) -> tuple[Seed, ...]:
    """Seeds for a model: known ones for GPT-2, its model card's (``tiny-ioi``), every
    last-layer head at END for ``random:`` models.

    Args:
        model: The model.
        roles: ``DEST:SOURCE`` roles to use with those heads instead of their own.

    Raises:
        InputError: the model has no known seeds (pass them explicitly).
    """
    if model.name in KNOWN_SEEDS:
        heads, own_roles = KNOWN_SEEDS[model.name]
    elif model.card is not None:
        heads, own_roles = model.card["seeds"]["heads"], model.card["seeds"]["roles"]
    elif model.name.startswith("random:"):
        heads, own_roles = f"{model.n_layers - 1}.*", "END:*"
    else:
        raise InputError(
            f"no known seed heads for model {model.name!r}: pass them, e.g. "
            "--seeds 9.6,9.9,10.0 --seed-roles END:IO"
        )
    return parse_seeds(heads, roles or own_roles, n_heads=model.n_heads)


TASKS = ("ioi", "induction", "greater-than")


def task_prompts(model: Model, n: int, *, seed: int = 0, task: str = "ioi") -> list[Prompt]:
    """A task's prompts for a model. IOI: ``tiny-ioi`` (a model with its card) gets its own
    task's held-out prompts (its vocabulary is the task's); any other model the standard
    IOI templates. Induction: random words of the model's tokenizer, repeated.
    Greater-than: years, for tokenizers that write them as 17 + two digits."""
    if task == "induction":
        from headgraph.ingest.tasks.induction import induction_prompts

        return induction_prompts(n, tokenizer=model.tokenizer, seed=seed)
    if task == "greater-than":
        from headgraph.ingest.tasks.greater_than import greater_than_prompts

        return greater_than_prompts(n, tokenizer=model.tokenizer, seed=seed)
    if task != "ioi":
        raise InputError(f"task {task!r}: choose one of {', '.join(TASKS)}")
    if model.card is not None and model.card.get("model") in ("tiny-ioi", "tiny-ioi-rope"):
        from headgraph.ingest import tiny_ioi

        return list[Prompt](tiny_ioi.prompts(n, held_out=True, seed=seed))
    from headgraph.ingest.tasks.ioi import ioi_prompts

    return list[Prompt](ioi_prompts(n, tokenizer=model.tokenizer, seed=seed))


def task_counterfactuals(model: Model, prompts: Sequence[Prompt], *, task: str) -> list[Prompt]:
    """The counterfactual of each of a task's prompts: IOI's ABC corruption (S1, IO and S2
    replaced by three other names; the names of the model's task for tiny-ioi).

    Raises:
        InputError: a task with no counterfactuals yet.
    """
    if task != "ioi":
        raise InputError(
            f"the counterfactual baseline needs counterfactual prompts: the ioi task has them "
            f"(its ABC corruption), {task} not yet; use --baseline mean"
        )
    from headgraph.ingest.tasks.ioi import IOIPrompt, corrupt

    names = None
    if model.card is not None and model.card.get("model") in ("tiny-ioi", "tiny-ioi-rope"):
        from headgraph.ingest.tiny_ioi.task import TASK_NAMES

        names = TASK_NAMES
    ioi = cast("list[IOIPrompt]", list(prompts))  # the ioi task's prompts
    return list[Prompt](corrupt(ioi, tokenizer=model.tokenizer, names=names))


def run_trace(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    out: Path,
    seeds: Sequence[Seed],
    params: TraceParams = TraceParams(),
    batch_size: int = 32,
    task: str = "ioi",
    progress: Callable[[int, int], None] | None = None,
    counterfactuals: Sequence[Prompt] | None = None,
) -> tuple[TraceRun, list[Edge]]:
    """Trace prompts and write every record to ``out`` (JSON Lines), atomically.

    Args:
        model: An :class:`headgraph.ingest.model.adapter.Model`.
        prompts: The prompts.
        out: Destination file; replaced only once the job has finished.
        seeds, params, batch_size, counterfactuals: As for
            :func:`headgraph.ingest.core.trace.trace`.
        task: Recorded on the run.
        progress: Called after each batch with (its prompt count, edges so far).

    Returns:
        The run record and the traced edges.
    """
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    firings = traced = 0
    edges: list[Edge] = []
    partial_name = ""
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=out.parent, prefix=out.name, suffix=".partial", delete=False
        ) as partial:
            partial_name = partial.name
            for batch in trace(
                model, prompts, seeds=seeds, params=params, batch_size=batch_size,
                counterfactuals=counterfactuals,
            ):  # fmt: skip
                for firing in batch.firing_records():
                    partial.write(json.dumps({"type": "firing", **asdict(firing)}) + "\n")
                    firings += 1
                    traced += firing.traced
                batch_edges = batch.edge_records()
                for edge in batch_edges:
                    row = {"type": "edge", **asdict(edge), "upstream": edge.upstream.name}
                    partial.write(json.dumps(row) + "\n")
                edges += batch_edges
                if progress:
                    progress(len(batch.prompts), len(edges))
            run = TraceRun(
                model=model.name,
                task=task,
                prompts=len(prompts),
                seeds=tuple(s.name for s in seeds),
                params=params,
                batch_size=batch_size,
                firings=firings,
                traced_firings=traced,
                edges=len(edges),
                seconds=round(time.perf_counter() - started, 3),
            )
            partial.write(json.dumps({"type": "run", **asdict(run)}) + "\n")
        os.replace(partial_name, out)
    finally:
        if partial_name and os.path.exists(partial_name):
            os.remove(partial_name)
    return run, edges


@dataclass(frozen=True)
class EdgeSummary:
    """One edge aggregated over prompts."""

    upstream: str
    head: str
    side: str
    role: str
    prompts: int
    mean_weight: float
    top_singular_vectors: tuple[int, ...]
    relevance: float = 0.0


def summarize(
    edges: Sequence[Edge], *, top: int = 10, n_prompts: int | None = None
) -> list[EdgeSummary]:
    """The most relevant edges (their relevance summed and divided by ``n_prompts``, by
    default the prompts the edges occur in), then those in the most prompts, for a quick
    look."""
    n = n_prompts or len({e.prompt_id for e in edges}) or 1
    groups: dict[tuple, list[Edge]] = defaultdict(list)
    for e in edges:
        groups[(e.upstream.name, e.head_name, e.side, e.role or f"t{e.token}")].append(e)
    rows = []
    for (upstream, head, side, role), group in groups.items():
        svs = Counter(k for e in group for k in e.singular_vectors)
        rows.append(
            EdgeSummary(
                upstream,
                head,
                side,
                role,
                len({e.prompt_id for e in group}),
                sum(e.weight for e in group) / len(group),
                tuple(k for k, _ in svs.most_common(3)),
                sum(e.relevance for e in group) / n,
            )
        )
    rows.sort(key=lambda r: (-r.relevance, -r.prompts, -r.mean_weight))
    return rows[:top]
