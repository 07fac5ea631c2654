"""Export: JSON, GraphML and neo4j-admin CSV hold the whole run; the CSV loads back as it was."""

import csv
import json
import re
from pathlib import Path

import pytest

import headgraph.queries.export as export
from headgraph.queries.export import export_run
from headgraph.queries.paths import paths
from headgraph.queries.redundancy import redundancy
from headgraph.queries.selection import QueryError
from headgraph.queries.store import open_store
from tests.queries import handmade

N_NODES = 1 + 1 + 12 + 8 + 3 + 6 + 6  # model, run, components, SVs, prompts, sites, firings
N_RELS = 8 + 6 + len(handmade.EDGES)  # HAS_SV, CARRIES (upstream, head, side, role), SIGNAL


def test_json_holds_every_node_and_relationship(hand_store, tmp_path):
    summary = export_run(hand_store, format="json", out=tmp_path / "run.json")
    assert (summary.nodes, summary.relationships) == (N_NODES, N_RELS)
    document = json.loads((tmp_path / "run.json").read_text())
    ids = {n["id"] for n in document["nodes"]}
    assert len(ids) == N_NODES
    assert all(r["start"] in ids and r["end"] in ids for r in document["relationships"])
    signal = [r for r in document["relationships"] if r["type"] == "SIGNAL"]
    assert sorted(r["properties"]["share"] for r in signal) == sorted(e[-1] for e in handmade.EDGES)


def test_csv_is_neo4j_admin_layout_and_loads_back_to_the_same_answers(hand_store, tmp_path):
    folder = tmp_path / "csv"
    export_run(hand_store, format="csv", out=folder)
    script = (folder / "import.sh").read_text()
    assert "neo4j-admin database import full" in script
    for name in re.findall(r"=([\w-]+\.csv)", script):
        assert (folder / name).exists()
    header = read_csv(folder / "nodes-Firing.csv")[0]
    assert header[0] == "key:ID(Firing)" and "svs:long[]" in header and "traced:boolean" in header
    rel_header = read_csv(folder / "relationships-SIGNAL-Site.csv")[0]
    assert rel_header[:2] == [":START_ID(Site)", ":END_ID(Firing)"]

    copy = open_store(str(tmp_path / "copy"))
    tables = read_admin_csv(folder)
    copy.write({k: v for k, v in tables.items() if k in ("Model", "Component", "SingularVector")})
    copy.write(
        {k: v for k, v in tables.items() if k not in ("Model", "Component", "SingularVector")}
    )
    try:
        for query in (paths, redundancy):
            assert query(copy, to="1.0") == query(hand_store, to="1.0")
    finally:
        copy.close()


def test_a_run_seeded_from_the_prediction_travels_whole_through_csv(tmp_path):
    """Predictions, the seeds' PREDICTS edges and the per-batch partials go too: the run
    read back from the loaded copy is the run exported."""
    from headgraph import ingest, load_model
    from headgraph.queries.export import read_run

    model = load_model("tiny-ioi")
    with open_store(tmp_path / "store") as store:
        ingest(model, n_prompts=16, store=store, run="lin", batch_size=8)
        original = read_run(store, "lin")
        export_run(store, format="csv", out=tmp_path / "csv")
    assert len(original.nodes["Prediction"]) == 16 and original.nodes["Partial"]
    assert original.relationships[("PREDICTS", "Firing", "Prediction")]
    tables = read_admin_csv(tmp_path / "csv")
    with open_store(tmp_path / "copy") as copy:
        first = ("Model", "Component", "SingularVector")
        copy.write({k: v for k, v in tables.items() if k in first})
        copy.write({k: v for k, v in tables.items() if k not in first})
        loaded = read_run(copy, "lin")
    for label, rows in original.nodes.items():
        assert len(loaded.nodes[label]) == len(rows), label
    for kind, rows in original.relationships.items():
        assert len(loaded.relationships[kind]) == len(rows), kind
    key = lambda r: r["key"]  # noqa: E731
    assert sorted(loaded.nodes["Prediction"], key=key) == sorted(
        original.nodes["Prediction"], key=key
    )


def read_admin_csv(folder: Path) -> dict[str, dict[str, list]]:
    """The CSV files as store tables, read by their neo4j-admin headers."""
    convert = {"long": int, "double": float, "boolean": lambda v: v == "true", "string": str}
    tables = {}
    for path in sorted(folder.glob("*.csv")):
        kind, name, *source = path.stem.split("-")
        table = name if kind == "nodes" else ":".join([name, *source])
        rows = read_csv(path)
        columns = {}
        for i, field in enumerate(rows[0]):
            if "ID(" in field:  # key:ID(Label), :START_ID(Label), :END_ID(Label)
                column = "key" if field.startswith("key:") else "from" if "START" in field else "to"
                columns[column] = [r[i] for r in rows[1:]]
                continue
            prop, kind_ = field.split(":")
            base = kind_.removesuffix("[]")
            if kind_.endswith("[]"):
                values = [
                    [convert[base](v) for v in r[i].split(export.ARRAY_DELIMITER)] if r[i] else []
                    for r in rows[1:]
                ]
            else:
                values = [convert[base](r[i]) if r[i] != "" else None for r in rows[1:]]
            columns[prop] = values
        tables[table] = columns
    return tables


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_an_export_never_overwrites_or_leaves_half_a_file(hand_store, tmp_path, monkeypatch):
    out = tmp_path / "run.json"
    out.write_text("precious")
    with pytest.raises(QueryError, match="exists already"):
        export_run(hand_store, format="json", out=out)
    assert out.read_text() == "precious"

    def broken(graph, path):
        path.write_text('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_json", broken)
    with pytest.raises(OSError):
        export_run(hand_store, format="json", out=tmp_path / "new.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    with pytest.raises(QueryError, match="use one of"):
        export_run(hand_store, format="xml", out=tmp_path / "x.xml")
