import json

import pytest
from click.testing import CliRunner

from headgraph.explorer.cli.main import main


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "run.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "trace",
            "--model",
            "random:tiny",
            "--prompts",
            "24",
            "--batch-size",
            "10",
            "--out",
            str(out),
        ],
    )
    return result, out


def test_a_run_too_small_for_the_mean_baseline_is_traced_without_one_and_says_so(tmp_path):
    out = tmp_path / "few.jsonl"
    argv = ["trace", "--model", "random:tiny", "--prompts", "4", "--out", str(out)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert "--baseline none" in result.output
    run = json.loads(out.read_text().splitlines()[-1])
    assert run["params"]["baseline"] == "none" and "value" in run["params"]["sides"]
    asked = CliRunner().invoke(main, [*argv, "--baseline", "mean", "--prompts", "1"])
    assert asked.exit_code != 0 and "one prompt is its own mean" in asked.output


def test_trace_writes_firings_edges_and_a_run_line_last(traced):
    result, out = traced
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    run = lines[-1]
    assert run["type"] == "run" and run["model"] == "random:tiny" and run["prompts"] == 24
    assert run["params"] == {  # IOI prompts have answers: seeded from the prediction
        "attention_threshold": 0.5, "signal_frac": 1.0, "edge_frac": 0.7,
        "seeding": "linear", "seed_frac": 1.0, "tau": 0.8, "ig_steps": 64, "top_k": 0,
        "top_p": 0.0, "sides": ["query", "key", "value", "inhibit"], "baseline": "mean",
        "edge_rule": "positive", "weighting": "stakes", "competitors": 2,
    }  # fmt: skip
    kinds = [line["type"] for line in lines[:-1]]
    assert kinds.count("firing") == run["firings"] and kinds.count("edge") == run["edges"] > 0
    edge = next(line for line in lines if line["type"] == "edge")
    assert {
        "prompt_id",
        "upstream",
        "layer",
        "head",
        "side",
        "token",
        "role",
        "weight",
        "singular_vectors",
        "terms",
    } <= set(edge)
    assert f"{run['edges']} edges" in result.output and "upstream" in result.output
    assert not list(out.parent.glob("*.partial"))


def test_unknown_seed_head_is_a_one_line_error_and_the_old_file_stays(tmp_path):
    out = tmp_path / "run.jsonl"
    out.write_text("previous run\n")
    result = CliRunner().invoke(
        main, ["trace", "--model", "random:tiny", "--seeds", "5.0", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "head 5.0 does not exist: the model has 2 layers of 4 heads" in result.output
    assert "Traceback" not in result.output
    assert out.read_text() == "previous run\n"
    assert list(tmp_path.iterdir()) == [out]


def test_a_failure_during_tracing_leaves_no_partial_file(tmp_path):
    out = tmp_path / "run.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "trace",
            "--model",
            "random:tiny",
            "--seeds",
            "1.0",
            "--seed-roles",
            "END:NOPE",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1 and "has no role 'NOPE'" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--edge-frac", "2"], "edge_frac must be in (0, 1]"),
        (["--model", "random:huge"], "unknown preset 'huge'"),
        (["--prompts", "0"], "0 is not in the range 1<=x<=1000000"),
        (["--prompts", "10000000"], "10000000 is not in the range 1<=x<=1000000"),
    ],
)
def test_bad_options_name_the_problem(args, message, tmp_path):
    argv = ["trace", "--model", "random:tiny", "--out", str(tmp_path / "x.jsonl"), *args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code != 0 and message in result.output


def test_help_shows_defaults():
    result = CliRunner().invoke(main, ["trace", "--help"])
    assert "[default: 0.7]" in result.output and "--seed-roles" in result.output


def test_trace_on_the_bundled_tiny_ioi_uses_its_card_seeds(tmp_path):
    out = tmp_path / "tiny.jsonl"
    result = CliRunner().invoke(
        main, ["trace", "--model", "tiny-ioi", "--prompts", "32", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text().splitlines()[-1])
    assert run["model"] == "tiny-ioi" and run["edges"] > 0
    assert all(seed.endswith("END->IO+1") for seed in run["seeds"])


def test_ingest_from_a_prompts_file_and_list_runs(tmp_path):
    prompts = tmp_path / "mine.jsonl"
    text = "Then, Ashley and John went to the store. John gave a ring to"
    prompts.write_text(
        "\n".join(
            json.dumps(
                {"id": f"p{i}", "text": text, "roles": {"IO": 2, "S2": 10, "END": 14, "IO+1": 3}}
            )
            for i in range(3)
        )
        + "\n"
    )
    store = tmp_path / "db"
    result = CliRunner().invoke(
        main, ["ingest", "--prompts-file", str(prompts), "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    assert "run tiny-ioi-ioi-mine: 3 prompts" in result.output
    listed = CliRunner().invoke(main, ["runs", "--store", str(store)])
    assert "tiny-ioi-ioi-mine" in listed.output and "complete" in listed.output


def test_a_bad_prompts_file_writes_nothing(tmp_path):
    prompts = tmp_path / "bad.jsonl"
    prompts.write_text('{"id": "p", "text": "Ashley", "roles": {"END": 7}}\n')
    store = tmp_path / "db"
    result = CliRunner().invoke(
        main, ["ingest", "--prompts-file", str(prompts), "--store", str(store)]
    )
    assert result.exit_code == 1 and "line 1: role END is at token 7" in result.output
    assert not store.exists()


def test_seed_roles_alone_apply_to_the_models_own_seed_heads(tmp_path):
    out = tmp_path / "t.jsonl"
    argv = ["trace", "--prompts", "8", "--seed-roles", "END:S2", "--out", str(out), "--top", "0"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text().splitlines()[-1])
    assert run["seeds"] == ["1.0 END->S2", "1.3 END->S2", "1.1 END->S2", "1.2 END->S2"]
    bad = CliRunner().invoke(main, ["trace", "--seed-roles", "END", "--out", str(out)])
    assert bad.exit_code == 2 and "must be DEST:SOURCE" in bad.output


def test_train_tiny_ioi_never_overwrites_without_being_told(tmp_path):
    from headgraph.ingest.tiny_ioi import CHECKPOINT

    bundled = CliRunner().invoke(main, ["train-tiny-ioi", "--out", str(CHECKPOINT)])
    assert bundled.exit_code == 2 and "the bundled checkpoint" in bundled.output
    existing = tmp_path / "mine.pt"
    existing.write_bytes(b"keep me")
    refused = CliRunner().invoke(main, ["train-tiny-ioi", "--out", str(existing)])
    assert refused.exit_code == 2 and "exists" in refused.output and "--force" in refused.output
    assert existing.read_bytes() == b"keep me"


def test_progress_off_a_terminal_is_plain_lines_on_stderr(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "headgraph", "ingest", "--prompts", "8", "--batch-size", "4",
         "--store", str(tmp_path / "db")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "tiny-ioi-ioi-8: 8/8 prompts" in done.stderr  # the last line, as in a notebook's !
    assert "8/8 prompts" not in done.stdout


def test_every_option_the_readme_shows_exists():
    """The README's CLI summary names only options the commands have."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## The CLI", 1)[1].split("```", 2)[1]
    seen = 0
    for line in block.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "headgraph":
            command = main.commands[words[1]]
        elif not line.startswith(" ") or not words:
            continue
        names = {o for p in command.params for o in getattr(p, "opts", [])}
        for flag in re.findall(r"--[a-z][a-z-]*", line.split("#")[0]):
            assert flag in names, f"README shows {flag} for headgraph {command.name}"
            seen += 1
    assert seen > 40


def test_a_counterfactual_run_stores_its_counterfactuals_and_verifies_against_them(tmp_path):
    store = str(tmp_path / "db")
    common = ["--model", "tiny-ioi", "--prompts", "16", "--batch-size", "8"]
    done = CliRunner().invoke(
        main, ["ingest", *common, "--store", store, "--baseline", "counterfactual"]
    )
    assert done.exit_code == 0, done.output
    from headgraph.queries.store import open_store

    with open_store(store, read_only=True) as opened:
        rows = opened.query("MATCH (p:Prompt) RETURN p.tokens AS t, p.counterfactual AS c")
    assert len(rows) == 16
    assert all(len(r["t"]) == len(r["c"]) and r["t"] != r["c"] for r in rows)
    verify = ["verify", "--store", store, "--top", "2", "--format", "json"]
    checked = CliRunner().invoke(main, verify)
    assert checked.exit_code == 0, checked.output
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "text": "x y", "roles": {}}) + "\n")
    refused = CliRunner().invoke(
        main, ["trace", "--model", "tiny-ioi", "--prompts-file", str(prompts), "--seeds", "1.0",
               "--seed-roles", "END:*", "--baseline", "counterfactual"],
    )  # fmt: skip
    assert refused.exit_code == 2 and "gives none" in refused.output, refused.output
