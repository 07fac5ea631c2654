"""CLI plumbing shared by every command: settings, store options, progress, errors.

Command modules import this one and never each other. Nothing here imports
torch or TransformerLens, so ``--help`` and a refused argument answer at once.

Errors: a :class:`~headgraph.errors.HeadgraphError` (something the user can
fix) becomes one line on stderr and exit status 1, through :class:`Group`.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from headgraph.errors import HeadgraphError
from headgraph.explorer.output import FORMATS

SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "show_default": True}
DEFAULT_STORE = "./headgraph-db"


class Group(click.Group):
    """A click group that turns every :class:`HeadgraphError` into a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HeadgraphError as error:
            raise click.ClickException(str(error)) from None


def add_options(options: list[Callable]) -> Callable:
    """A decorator applying click options in the order listed."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def store_option(help: str = "A folder (the embedded store) or neo4j://HOST:PORT.") -> Callable:
    return click.option("--store", "store_target", default=DEFAULT_STORE, help=help)


RUN_OPTION = click.option("--run", default=None, help="The run [default: the newest].")
FORMAT_OPTION = click.option(
    "--format", "out_format", type=click.Choice(FORMATS), default="table", help="Output."
)
MIN_RELEVANCE_OPTION = click.option(
    "--min-relevance",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="An edge's least relevance (its share of the prediction, per prompt).",
)


@contextlib.contextmanager
def reading(store_target: str, *, write: bool = False) -> Iterator[Any]:
    """An existing store, read-only unless ``write``; closed afterwards.

    It is never created here: only ``headgraph ingest`` creates a store.
    """
    from headgraph.queries.store import open_store

    store = open_store(store_target, read_only=not write, create=False)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int, int], None]]:
    """Progress over prompts with the edges found and their rate.

    On a terminal, a bar; elsewhere (a notebook's ``!headgraph``, CI, a pipe)
    a plain line on stderr every few seconds and at the end, flushed at once.
    Yields ``update(prompts_done_now, edges_so_far)``.
    """
    start = time.perf_counter()
    done, edges = [0], [0]

    def rate() -> str:
        seconds = time.perf_counter() - start
        if not (seconds and edges[0]):  # a job that counts no edges (verify) shows none
            return ""
        return f"{edges[0]:,} edges, {edges[0] / seconds:,.0f} edges/s"

    if sys.stderr.isatty():
        with click.progressbar(
            length=total, label=label, file=sys.stderr, item_show_func=lambda _: rate()
        ) as bar:

            def update(n: int, edges_so_far: int) -> None:
                edges[0] = edges_so_far
                bar.update(n, current_item=edges_so_far)

            yield update
        return
    last = [0.0]

    def update_line(n: int, edges_so_far: int) -> None:
        done[0] += n
        edges[0] = edges_so_far
        now = time.perf_counter()
        if done[0] >= total or now - last[0] >= 2.0:
            last[0] = now
            line = ", ".join(filter(None, (f"{label}: {done[0]}/{total} prompts", rate())))
            print(line, file=sys.stderr, flush=True)

    yield update_line
