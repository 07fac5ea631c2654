"""The query commands end to end on an ingested tiny-ioi store."""

import json

import pytest

from headgraph.ingest.tasks.ioi import NAMES
from tests.explorer.commands import ingested, run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ingested(tmp_path_factory, "--prompts", "48", "--run", "cli", "--seed-from", "heads")


def test_paths_as_table_json_and_csv(store):
    table = run("paths", "--to", "L1H0", "--store", store, "--top", "3")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("routes into 1.0, run cli; score: product")
    assert lines[1].split()[:3] == ["rank", "score", "prompts"]
    assert len(lines) == 5 and "-> 1.0@END" in lines[2]
    data = json.loads(run("paths", "--to", "1.0", "--store", store, "--format", "json").output)
    assert data["target"] == "1.0" and len(data["routes"]) == 10
    assert {"upstream", "role", "side", "downstream", "singular_vectors"} <= set(
        data["routes"][0]["hops"][0]
    )
    csv = run("paths", "--to", "1.0", "--from", "0.2", "--store", store, "--format", "csv")
    assert csv.output.splitlines()[0] == "rank,score,prompts,share,mean score,route"


def test_errors_say_what_to_do_and_empty_answers_are_not_errors(store):
    unknown = run("paths", "--to", "3.0", "--store", store)
    assert unknown.exit_code == 1 and "tiny-ioi has 3 layers of 4 heads" in unknown.output
    no_run = run("paths", "--to", "1.0", "--run", "nope", "--store", store)
    assert no_run.exit_code == 1 and "runs: cli" in no_run.output
    empty = run("paths", "--to", "2.0", "--store", store)  # layer 2 is never traced
    assert empty.exit_code == 0 and "no routes into 2.0" in empty.output
    missing = run("paths", "--to", "1.0", "--store", store + "-missing")
    assert missing.exit_code == 1 and "headgraph ingest" in missing.output


def test_redundancy_prints_its_three_measures(store):
    result = run("redundancy", "--to", "1.0", "--store", store)
    assert result.exit_code == 0, result.output
    for title in ("node-disjoint routes:", "substitutes:", "critical components:"):
        assert title in result.output
    data = json.loads(run("redundancy", "--to", "1.0", "--store", store, "--format", "json").output)
    assert data["connectivity"]["prompts"] == len(data["connectivity"]["per_prompt"]) > 0


def test_features_lists_singular_vectors_with_name_tokens(store):
    result = run("features", "--head", "1.0", "--side", "key", "--top", "3", "--store", store)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("1.0:")
    assert any(name in result.output for name in NAMES)  # the key side reads names
    one = run("features", "--sv", "0.2:0", "--store", store, "--tokens", "0")
    assert one.exit_code == 0 and "read by:" in one.output and "prompts:" in one.output
    both = run("features", "--store", store)
    assert both.exit_code == 2 and "--head 9.9 or --sv 9.9:17" in both.output


def test_cypher_reads_with_parameters_and_refuses_writes(store):
    result = run(
        "cypher",
        "MATCH (f:Firing) WHERE f.head_name = $h RETURN count(*) AS n",
        "--param",
        "h=1.0",
        "--store",
        store,
        "--format",
        "json",
    )
    assert result.exit_code == 0 and json.loads(result.output)[0]["n"] > 0
    refused = run("cypher", "MATCH (r:Run) DETACH DELETE r", "--store", store)
    assert refused.exit_code == 1 and "--write" in refused.output
    assert "cli" in run("runs", "--store", store).output


def test_export_writes_once(store, tmp_path):
    out = tmp_path / "cli-graphml"
    first = run("export", "--store", store, "--out", str(out))
    assert first.exit_code == 0 and (out / "circuit.graphml").exists(), first.output
    again = run("export", "--store", store, "--out", str(out))
    assert again.exit_code == 1 and "exists already" in again.output


def test_each_export_format_writes_under_its_default_name(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for fmt, name in [("circuit-tracer", "-graphs"), ("node-link", ".node-link.json")]:
        result = run("export", "--store", store, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(name)], fmt


def test_help_shows_defaults_in_kebab_case():
    result = run("paths", "--help")
    assert "--max-hops" in result.output and "[default: 4; x>=1]" in result.output


def test_diff_and_runs_that_use_an_edge(tmp_path_factory):
    both = ingested(tmp_path_factory, "--prompts", "48", "--run", "a")
    assert run("ingest", "--store", both, "--prompts", "48", "--prompt-seed", "7",
               "--run", "b").exit_code == 0  # fmt: skip
    table = run("diff", "a", "b", "--store", both)
    assert table.exit_code == 0 and table.output.startswith("run b against run a: edges ")
    data = json.loads(run("diff", "a", "b", "--store", both, "--format", "json").output)
    statuses = {e["status"] for e in data["edges"]}
    assert statuses <= {"gained", "lost", "changed", "same"} and len(data["edges"]) > 10
    same = run("diff", "a", "a", "--store", both, "--format", "json")
    assert {e["status"] for e in json.loads(same.output)["edges"]} == {"same"}
    assert "choose from gained" in run("diff", "a", "b", "--store", both, "--show", "x").output
    using = run("runs", "--store", both, "--edge", "0.2-1.0:query", "--format", "json")
    assert sorted(r["run"] for r in json.loads(using.output)) == ["a", "b"]
    none = run("runs", "--store", both, "--edge", "2.3-2.2:key")
    assert none.exit_code == 0 and "use 2.3->2.2:key" in none.output
