"""What a query is about: the run (the latest by default) and the heads it names, checked.

Every query starts here, so that an unknown run or a head the model does not
have is refused with a message that says what exists, before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headgraph.errors import InputError, QueryError
from headgraph.names import EDGE_SIDES, Head, model_name, parse_head, parse_singular_vector
from headgraph.queries.store import GraphStore


@dataclass(frozen=True)
class RunRef:
    """The run a query reads, with its model's shape.

    Attributes:
        key: The run's name.
        model: The model's key in the store (``NAME@FINGERPRINT``).
        prompts: Prompts in the run.
        status: ``complete``, or ``running`` for a run still being written (or interrupted).
        n_layers, n_heads: The model's shape (for checking head names).
    """

    key: str
    model: str
    prompts: int
    status: str
    n_layers: int
    n_heads: int

    @property
    def model_name(self) -> str:
        """The model's name, without the fingerprint of its key."""
        return model_name(self.model)

    def head(self, text: str) -> str:
        """A head name (``9.9``, ``L9H9`` or ``a9.h9``) checked against the model, as ``L.H``.

        Raises:
            QueryError: not a head name, or not one of the model's heads.
        """
        if text.strip() == "logits":  # where a run seeded from the prediction ends
            return "logits"
        try:
            layer, head = parse_head(text)
        except InputError as error:
            raise QueryError(str(error)) from None
        if not (layer < self.n_layers and head < self.n_heads):
            raise QueryError(
                f"head {layer}.{head} does not exist: {self.model_name} has {self.n_layers} "
                f"layers of {self.n_heads} heads (0.0 .. {self.n_layers - 1}.{self.n_heads - 1})"
            )
        return f"{layer}.{head}"

    def component(self, text: str) -> str:
        """A component name checked against the model: a head (any form, as ``L.H``),
        ``embed``, ``pos_embed``, ``mlpL``, ``attn_biasL``, ``L.H:qk_bias`` or ``logits``.

        Raises:
            QueryError: not a component of the model.
        """
        text = text.strip()
        if text in ("embed", "pos_embed", "logits"):
            return text
        if text.endswith(":qk_bias"):
            return self.head(text.removesuffix(":qk_bias")) + ":qk_bias"
        layered = re.fullmatch(r"(mlp|attn_bias)(\d+)", text)
        if layered:
            if int(layered.group(2)) >= self.n_layers:
                raise QueryError(f"{text}: {self.model_name} has layers 0 .. {self.n_layers - 1}")
            return text
        try:
            Head.parse(text)
        except InputError:
            raise QueryError(
                f"{text!r} is not a component: name a head (9.9, L9H9), embed, pos_embed, "
                "mlpL, attn_biasL or L.H:qk_bias"
            ) from None
        return self.head(text)  # a head's name: refused if the model lacks it

    def singular_vector(self, text: str, rank: int) -> tuple[str, int]:
        """``9.9:17`` checked against the model, as ``("9.9", 17)``; heads have ``rank`` of them.

        Raises:
            QueryError: malformed, unknown head, or an index of ``rank`` or more.
        """
        try:
            (layer, head), index = parse_singular_vector(text)
        except InputError as error:
            raise QueryError(str(error)) from None
        name = self.head(f"{layer}.{head}")
        if index >= rank:
            raise QueryError(
                f"{text}: {name} has {rank} singular vectors (indices 0 .. {rank - 1})"
            )
        return name, index


def check_side(side: str) -> None:
    """Raise QueryError unless ``side`` is a side an edge has (query, key, value,
    inhibit) or ``any``."""
    if side not in (*EDGE_SIDES, "any"):
        raise QueryError(f"side {side!r}: use {', '.join(EDGE_SIDES)} or any")


def check_prompt(store: GraphStore, run: str, prompt: str) -> None:
    """Raise QueryError unless the run has a prompt with this id."""
    found = store.query(
        "MATCH (p:Prompt) WHERE p.run = $run AND p.id = $id RETURN p.id AS id",
        {"run": run, "id": prompt},
    )
    if not found:
        raise QueryError(f"no prompt {prompt!r} in run {run!r}")


def resolve_run(store: GraphStore, run: str | None = None) -> RunRef:
    """The named run, or the newest one.

    Raises:
        QueryError: the store has no runs, or none of that name (the message lists them).
    """
    if run is None:
        runs = store.runs()
        if not runs:
            raise QueryError("the store holds no runs yet: write one with `headgraph ingest`")
        run = str(runs[0]["run"])
    info = store.run_info(run)
    if info is None:
        names = ", ".join(r["run"] for r in store.runs()) or "none"
        raise QueryError(f"no run named {run!r} in the store (runs: {names}; see `headgraph runs`)")
    shape = store.query(
        "MATCH (m:Model) WHERE m.key = $model RETURN m.n_layers AS n_layers, m.n_heads AS n_heads",
        {"model": info["model"]},
    )
    if not shape:
        raise QueryError(f"run {run!r} names model {info['model']!r}, which the store lacks")
    return RunRef(
        key=info["key"],
        model=info["model"],
        prompts=int(info["prompts"] or 0),
        status=info["status"],
        n_layers=int(shape[0]["n_layers"]),
        n_heads=int(shape[0]["n_heads"]),
    )


def stored_prompts(store: GraphStore, run: str, *, prompt: str | None = None) -> list[dict]:
    """The run's prompts (or only ``prompt``) as stored: ``id``, ``text``, ``tokens``,
    ``words`` (each token as text; empty in stores older than stored words), ``roles``
    (a dict), ``batch``, ``counterfactual`` (its tokens, under that baseline; else
    empty); in batch order."""
    import json

    only = " AND p.id = $id" if prompt is not None else ""
    params = {"run": run} | ({"id": prompt} if prompt is not None else {})
    rows = store.query(
        f"MATCH (p:Prompt) WHERE p.run = $run{only} RETURN p.id AS id, p.text AS text, "
        "p.tokens AS tokens, p.roles AS roles, p.batch AS batch, p.words AS words, "
        "p.counterfactual AS counterfactual",
        params,
    )
    for row in rows:  # an older store's words and counterfactuals: null
        row["roles"] = json.loads(row["roles"] or "{}")
        row["tokens"] = [int(t) for t in row["tokens"]]
        row["words"] = list(row.get("words") or [])
        row["counterfactual"] = [int(t) for t in row.get("counterfactual") or ()]
    return sorted(rows, key=lambda r: (r["batch"], r["id"]))
