"""verify and compare from the command line, on an ingested tiny-ioi store."""

import json

import pytest

from tests.explorer.commands import ingested, run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ingested(tmp_path_factory, "--prompts", "64")


def test_verify_writes_effects_back_and_prints_them_sorted(store):
    result = run("verify", "--store", store, "--top", "4", "--prompts", "48")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # progress goes to stderr
    assert lines[0].startswith("run tiny-ioi-ioi-64: ioi metric, global ablating, 48 prompts")
    differences = [float(line.split()[5]) for line in lines[2:] if "->" in line]
    assert len(differences) == 4 and differences == sorted(differences)
    stored = run(
        "cypher", "MATCH (e:Effect) RETURN count(*) AS n", "--store", store, "--format", "json"
    )
    assert json.loads(stored.output)[0]["n"] == 4
    again = run("verify", "--store", store, "--top", "4", "--prompts", "48", "--format", "json")
    data = json.loads(again.stdout)
    assert len(data["effects"]) == 4
    stored = run(
        "cypher", "MATCH (e:Effect) RETURN count(*) AS n", "--store", store, "--format", "json"
    )
    assert json.loads(stored.output)[0]["n"] == 4  # measured again: replaced, not added


def test_verify_one_edge_locally_and_refuse_bad_input(store, tmp_path):
    one = run("verify", "--store", store, "--edge", "0.2->1.0:query", "--mode", "local",
              "--prompts", "32", "--format", "json")  # fmt: skip
    assert one.exit_code == 0, one.output
    (effect,) = json.loads(one.stdout)["effects"]
    assert effect["mode"] == "local" and effect["head"] == "1.0"
    bad = run("verify", "--store", store, "--edge", "0.2=>1.0")
    assert bad.exit_code == 2 and "UPSTREAM-HEAD:SIDE" in bad.output
    metric = tmp_path / "metric.py"
    metric.write_text("def end_logit(log_probs, prompts):\n    return log_probs[:, 0]\n")
    custom = run("verify", "--store", store, "--edge", "0.2->1.0:query", "--prompts", "16",
                 "--metric", f"{metric}:end_logit")  # fmt: skip
    assert custom.exit_code == 0, custom.output
    missing = run("verify", "--store", store, "--metric", f"{metric}:nothing")
    assert missing.exit_code == 2 and "has no function nothing" in missing.output


def test_compare_against_the_models_card(store):
    result = run("compare", "--store", store)  # the run's model's own reference by default
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run tiny-ioi-ioi-64 against tiny-ioi")
    heads = next(line for line in result.output.splitlines() if line.startswith("heads"))
    precision, recall = (float(x) for x in heads.split()[1:3])
    assert recall == 1 and precision > 0.5  # seeded from the prediction, no heads named
    seeded = run("ingest", "--store", store, "--prompts", "64", "--seed-from", "heads",
                 "--run", "by-heads")  # fmt: skip
    assert seeded.exit_code == 0, seeded.output
    result = run("compare", "--store", store, "--run", "by-heads")
    heads = next(line for line in result.output.splitlines() if line.startswith("heads"))
    assert heads.split()[1:3] == ["1", "1"]  # the card's seed heads: every head, no other
    args = ("compare", "--store", store, "--reference", "ioi-gpt2", "--format", "json")
    data = json.loads(run(*args).output)
    assert data["reference"] == "ioi-gpt2" and data["heads"]["true_positives"] >= 0


def test_compare_refuses_a_model_with_no_known_reference(tmp_path_factory):
    other = ingested(tmp_path_factory, "--model", "random:tiny", "--prompts", "4")
    result = run("compare", "--store", other)
    assert result.exit_code == 1
    assert "no reference circuit is known for model 'random:tiny'" in result.output


def test_the_edge_form_without_a_redirect_and_a_missing_store(store, tmp_path):
    plain = run("verify", "--store", store, "--edge", "0.2-1.0:query", "--prompts", "8",
                "--format", "json")  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["effects"][0]["upstream"] == "0.2"
    missing = tmp_path / "no-store"
    result = run("verify", "--store", str(missing), "--top", "1")
    assert result.exit_code == 1 and "no headgraph store at" in result.output
    assert not missing.exists()  # refused, and nothing created
