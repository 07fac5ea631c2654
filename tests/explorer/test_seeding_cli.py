"""Tracing from the prediction from the command line: every family, no seed heads named."""

import json

import pytest

from tests.explorer.commands import run

LINE = {
    "text": "When Mary and John went to the store, John gave a drink to",
    "roles": {"IO": 1, "S1": 3, "S2": 9, "END": 13},
    "answer": " Mary",
    "wrong": " John",
}


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    file = tmp_path_factory.mktemp("prompts") / "answers.jsonl"
    names = [("Mary", "John"), ("Jessica", "Michael"), ("Ashley", "Daniel"), ("Amanda", "David")]
    lines = [
        {**LINE, "id": f"p{i}", "text": LINE["text"].replace("Mary", a).replace("John", b),
         "answer": f" {a}", "wrong": f" {b}"}
        for i, (a, b) in enumerate(names)
    ]  # fmt: skip
    file.write_text("\n".join(json.dumps(line) for line in lines))
    return str(file)


@pytest.mark.parametrize("family", ["pythia", "gptj", "llama", "gemma2", "attn-only", "tiny"])
def test_a_prompts_file_with_answers_traces_every_family_with_no_seeds(
    family, prompts_file, tmp_path
):
    store = str(tmp_path / "db")
    result = run("ingest", "--model", f"random:{family}", "--prompts-file", prompts_file,
                 "--store", store, "--run", "r")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = run("cypher", "MATCH (p:Prediction) RETURN count(*) AS n, sum(p.seeds) AS seeds",
               "--store", store, "--format", "json")  # fmt: skip
    (counts,) = json.loads(rows.output)
    assert counts["n"] == 4
    params = json.loads(
        json.loads(run("cypher", "MATCH (r:Run) RETURN r.params AS p", "--store", store,
                       "--format", "json").output)[0]["p"]
    )  # fmt: skip
    assert params["seeding"] == "linear" and params["seeds"] == []


def test_tiny_ioi_traced_from_its_prediction_ends_in_the_name_movers(tmp_path):
    store = str(tmp_path / "db")
    assert run("ingest", "--store", store, "--prompts", "48").exit_code == 0
    query = ("MATCH (a:Component)-[c:CARRIES]->(b:Component) WHERE b.name = 'logits' "
             "AND c.role = 'IO+1' AND c.prompts >= 24 RETURN a.name AS head")  # fmt: skip
    rows = json.loads(run("cypher", query, "--store", store, "--format", "json").output)
    assert {r["head"] for r in rows} == {"1.0", "1.1", "1.2", "1.3"}  # the card's name movers
    routes = run("paths", "--to", "logits", "--store", store, "--top", "20", "--format", "json")
    assert routes.exit_code == 0, routes.output
    hops = [r["hops"] for r in json.loads(routes.output)["routes"]]
    assert all(h[-1]["side"] == "logit" and h[-1]["downstream"] == "logits@END" for h in hops)
    assert any(len(h) >= 2 and h[-1]["upstream"] in ("1.0", "1.1", "1.2", "1.3") for h in hops)
    picture = tmp_path / "circuit.svg"
    drawn = run("render", "--store", store, "--top", "40", "--out", str(picture))
    assert drawn.exit_code == 0 and "<!-- logits -->" in picture.read_text()  # drawn on top


def test_seed_heads_and_seeding_from_the_prediction_are_refused_together():
    result = run("ingest", "--seeds", "1.0", "--seed-from", "linear", "--store", "/nonexistent")
    assert result.exit_code == 2 and "leave out --seeds" in result.output


def test_the_induction_task_traces_from_the_prediction_and_verifies_by_the_answer(tmp_path):
    store = str(tmp_path / "db")
    done = run("ingest", "--model", "random:tiny", "--task", "induction", "--prompts", "16",
               "--store", store)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "random:tiny-induction-16" in done.output
    checked = run("verify", "--store", store, "--top", "1", "--prompts", "8")
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("run random:tiny-induction-16: answer metric")


def test_prob_seeding_takes_a_support_of_its_own_for_prompts_without_answers(tmp_path):
    file = tmp_path / "bare.jsonl"
    file.write_text(json.dumps({"id": "a", "text": LINE["text"], "roles": LINE["roles"]}))
    store = str(tmp_path / "db")
    refused = run("ingest", "--model", "random:llama", "--prompts-file", str(file),
                  "--seed-from", "prob", "--store", store)  # fmt: skip
    assert refused.exit_code == 1 and "has no answer" in refused.output
    done = run("ingest", "--model", "random:llama", "--prompts-file", str(file),
               "--seed-from", "prob", "--top-k", "3", "--store", store)  # fmt: skip
    assert done.exit_code == 0, done.output
    (row,) = json.loads(run("cypher", "MATCH (p:Prediction) RETURN p.measure AS m, p.seeds AS n",
                            "--store", store, "--format", "json").output)  # fmt: skip
    assert row["m"] == "log-probability" and row["n"] > 0
