"""The bundled Llama-style model: rotary positions, RMSNorm, grouped-query attention."""

import json

import pytest

from headgraph.ingest import tiny_ioi
from headgraph.ingest.model import load_model
from tests.explorer.commands import run


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-ioi-rope")


def test_it_is_llama_shaped_small_and_solves_held_out_ioi(model):
    cfg = model.hooked.cfg
    assert model.name == "tiny-ioi-rope" and cfg.positional_embedding_type == "rotary"
    assert cfg.normalization_type == "RMSPre" and cfg.n_key_value_heads == 2
    assert tiny_ioi.ROPE_CHECKPOINT.stat().st_size < 1_000_000
    result = tiny_ioi.evaluate(model, tiny_ioi.prompts(500, held_out=True, seed=7))
    assert result.accuracy >= 0.97 and result.logit_diff > 5
    assert model.card["seeds"]["heads"] and model.card["training"]["seconds"] < 240


def test_seeding_from_the_prediction_recovers_every_head_of_its_card(tmp_path):
    store = str(tmp_path / "db")
    done = run("ingest", "--model", "tiny-ioi-rope", "--prompts", "64", "--store", store)
    assert done.exit_code == 0, done.output
    result = run("compare", "--store", store, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["reference"] == "tiny-ioi-rope" and data["heads"]["recall"] == 1.0


def test_verify_ablates_in_the_rotated_frame_and_beats_the_controls(tmp_path):
    store = str(tmp_path / "db")
    assert run("ingest", "--model", "tiny-ioi-rope", "--prompts", "48", "--store", store,
               "--seed-from", "heads").exit_code == 0  # fmt: skip
    result = run("verify", "--store", store, "--top", "4", "--format", "json")
    assert result.exit_code == 0, result.output
    effects = json.loads(result.stdout)["effects"]
    assert len(effects) == 4
    assert sum(e["effect"] for e in effects) < sum(e["control"] for e in effects) - 1.0
