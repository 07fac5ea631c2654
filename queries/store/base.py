"""The base of every store: run bookkeeping and batch writes, over a backend's ``query``
and ``write``.

What every store does, on top of its backend's ``query`` and ``write``.

A run is written batch by batch. A batch first deletes anything an interrupted
attempt left of it, then copies its nodes and relationships and appends itself
to the run's ``done_batches``, atomically. A
restarted run skips the batches already done, in whatever order they were
done (the shards of a sharded ingest finish theirs apart). The run's aggregates
are rebuilt at the end from the batches' partial aggregates (``Partial``). Killed
at any point and restarted, a run therefore ends with the same graph as an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any

Rows = dict[str, list]
PER_BATCH = (
    "Firing",
    "Site",
    "Prompt",
    "Prediction",
    "Partial",
)  # node types written per batch (with a `batch` property)


# whether an interrupted attempt left rows of a batch (all of them are written at once)
LEFT_OVER = "MATCH (p:Prompt) WHERE p.run = $run AND p.batch = $batch RETURN p.key LIMIT 1"


# a finished run's index: routes (queries.inbound), circuit (circuit_index), redundancy
# (redundancy_index), the singular vectors each head uses (feature_use)
INDEX = ("Inbound", "InboundEdges", "InboundPage", "CircuitIndex", "CircuitPage")
INDEX += ("RedundancyIndex", "FeatureIndex")


def index_deletes(run: str) -> list[tuple[str, dict]]:
    """Statements that delete a run's route index."""
    return [(f"MATCH (i:{label}) WHERE i.run = $run DELETE i", {"run": run}) for label in INDEX]


class GraphStore:
    """Run bookkeeping and batch writes; backends provide ``query``, ``write``,
    ``close`` and the dialect's ``APPEND_DONE`` (append ``$batch`` to ``r.done_batches``).
    A store is a context manager that closes it."""

    APPEND_DONE: str  # each backend's dialect
    # What finishing a run also sets on it (a backend that claims runs releases the claim).
    ON_FINISH: dict[str, Any] = {}
    # Where other processes may open this store to write beside this one (a server's
    # address), or None: one writer process only (the embedded store).
    shared_address: str | None = None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def write(self, tables: dict[str, Rows], *, delete=(), then=()) -> None:
        raise NotImplementedError

    def frame(self, cypher: str, params: dict[str, Any] | None = None, *, columns=()):
        """Run Cypher and return the rows as a pandas DataFrame (``columns`` name an empty one)."""
        import pandas as pd

        rows = self.query(cypher, params)
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(columns))

    def query_if_present(
        self, cypher: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query on a table that stores written by an older headgraph lack
        (``Effect``, ``Label``, ``SavedCircuit``): none there, instead of an error."""
        try:
            return self.query(cypher, params)
        except Exception:  # noqa: BLE001 - each backend words "no such table" its own way
            return []

    def run_info(self, run: str) -> dict[str, Any] | None:
        """The run's record, or None if the store has no such run."""
        rows = self.query(
            "MATCH (r:Run) WHERE r.key = $run RETURN r.key AS key, r.model AS model, "
            "r.task AS task, r.params AS params, r.status AS status, r.prompts AS prompts, "
            "r.batches AS batches, r.done_batches AS done_batches, r.firings AS firings, "
            "r.edges AS edges, r.started AS started, r.finished AS finished",
            {"run": run},
        )
        return rows[0] if rows else None

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first."""
        return self.query(
            "MATCH (r:Run) RETURN r.key AS run, r.model AS model, r.task AS task, "
            "r.status AS status, r.prompts AS prompts, r.firings AS firings, r.edges AS edges, "
            "r.started AS started ORDER BY r.started DESC"
        )

    def has_model(self, name: str) -> bool:
        return bool(self.query("MATCH (m:Model) WHERE m.key = $name RETURN m.key", {"name": name}))

    def start_run(
        self, run_row: dict[str, Any], model_tables: dict[str, Rows] | None, *, writer: str = ""
    ) -> None:
        """Create the run (and the model's nodes, when the store lacks them), in one transaction.

        ``writer`` identifies the ingest that writes it (see :meth:`claim_run`).
        """
        tables = dict(model_tables or {})
        tables["Run"] = {k: [v] for k, v in run_row.items()}
        self.write(tables)

    def claim_run(self, run: str, writer: str) -> None:
        """Make ``writer`` the only ingest writing ``run`` before it resumes the run.

        A no-op here: the embedded store admits one writer process per folder.
        A server store refuses a run that another live ingest is writing.

        Raises:
            StoreError: another ingest writes the run.
        """

    def write_batch(self, run: str, batch: int, tables: dict[str, Rows], *, done=True) -> None:
        """Write one batch atomically; a leftover of an interrupted attempt is replaced.

        ``done``: record the batch as done in the same transaction. A shard of a sharded
        ingest writes its batches with False, and the ingest's driver alone records them
        (:meth:`mark_done`), so that two writers never update the run at once.
        """
        params = {"run": run, "batch": batch}
        then = [(f"MATCH (r:Run) WHERE r.key = $run {self.APPEND_DONE}", params)] if done else []
        if self.query(LEFT_OVER, params):  # deleted apart, as in finish_run
            self.write({}, delete=self._leftovers(params))
        self.write(tables, then=then)

    def mark_done(self, run: str, batch: int) -> None:
        """Record a batch that a shard wrote as done."""
        params = {"run": run, "batch": batch}
        self.write({}, then=[(f"MATCH (r:Run) WHERE r.key = $run {self.APPEND_DONE}", params)])

    @staticmethod
    def _leftovers(params: dict) -> list[tuple[str, dict]]:
        """Statements deleting what an interrupted attempt at a batch left."""
        return [
            (f"MATCH (n:{node}) WHERE n.run = $run AND n.batch = $batch DETACH DELETE n", params)
            for node in PER_BATCH
        ]

    def signal_rows(self, run: str) -> list[dict[str, Any]]:
        """Every per-prompt edge of a run (for the aggregates). Its ``role`` is that of the
        token where its upstream end writes (an upstream firing's destination, or a
        site's token): the firing's destination on the query side, its source on the key
        and value sides, its competitor on the inhibition side."""
        return [
            row
            for source, role in (("Firing", "a.dest_role"), ("Site", "a.role"))
            for row in self.query(
                f"MATCH (a:{source})-[s:SIGNAL]->(f:Firing) WHERE f.run = $run RETURN "
                f"s.upstream AS upstream, f.head_name AS head, s.side AS side, {role} AS role, "
                "f.prompt AS prompt, s.weight AS weight, f.svs AS svs, "
                "coalesce(s.relevance, 0.0) AS relevance",
                {"run": run},
            )
        ]

    def predicts_rows(self, run: str) -> list[dict[str, Any]]:
        """Every seed of a run seeded from the prediction (for the aggregates)."""
        return self.query(
            "MATCH ()-[p:PREDICTS]->(r:Prediction) WHERE r.run = $run RETURN p.upstream AS "
            "upstream, p.token AS token, r.prompt AS prompt, p.weight AS weight, "
            "p.share AS share",
            {"run": run},
        )

    def finish_run(
        self,
        run: str,
        carries: Rows,
        counts: dict[str, Any],
        *,
        index: dict[str, Rows] | None = None,
    ) -> None:
        """Replace the run's aggregates and its route index (:data:`INDEX`) and mark it
        complete.

        What an earlier finish wrote is deleted first, in a transaction of its own that
        marks the run running again: LadybugDB's commit of a bulk load into a
        relationship table after deleting from it in the same transaction ran for over
        ten minutes at 200k ``CARRIES``. Killed in between, the run is not complete, and
        rerunning the ingest finishes it.
        """
        counts = {**counts, **self.ON_FINISH}
        sets = ", ".join(f"r.{k} = ${k}" for k in counts)
        self.write(
            {},
            delete=[
                (
                    "MATCH (:Component)-[c:CARRIES]->(:Component) WHERE c.run = $run DELETE c",
                    {"run": run},
                ),
                *index_deletes(run),
            ],
            then=[("MATCH (r:Run) WHERE r.key = $run SET r.status = 'running'", {"run": run})],
        )
        self.write(
            {"CARRIES": carries, **(index or {})},
            then=[(f"MATCH (r:Run) WHERE r.key = $run SET {sets}", {"run": run, **counts})],
        )
