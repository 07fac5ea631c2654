"""Loading real models: the GPT-2 tokenizer offline, local Hugging Face folders, the hub."""

import hashlib
from pathlib import Path

import pytest
import torch

from headgraph.ingest.core.records import parse_seeds
from headgraph.ingest.core.trace import pad_tokens, trace
from headgraph.ingest.model import HFTokenizer, ModelError, load_model
from headgraph.ingest.tasks.ioi import NAMES, ioi_prompts, single_token_names

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gpt2-tokenizer"
SENTENCE = "When Mary and John went to the store, John gave a drink to"
SENTENCE_IDS = [2215, 5335, 290, 1757, 1816, 284, 262, 3650, 11, 1757, 2921, 257, 4144, 284]


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from transformers import GPT2Tokenizer

    return HFTokenizer(GPT2Tokenizer.from_pretrained(FIXTURE))


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory, gpt2_tokenizer):
    """A GPT-2-architecture model with random weights, saved in Hugging Face format."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("gpt2-shaped")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=50257)
    hf_model = GPT2LMHeadModel(config).eval()  # no dropout
    with torch.no_grad():  # peaked attention, so that heads fire
        for block in hf_model.transformer.h:
            block.attn.c_attn.weight.mul_(15)
            block.attn.c_attn.bias.normal_(0, 0.3)
    hf_model.save_pretrained(folder)
    gpt2_tokenizer.hf.save_pretrained(folder)
    return folder, hf_model


def test_the_fixture_is_openais_gpt2_vocabulary(gpt2_tokenizer):
    digest = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in FIXTURE.glob("*.*")}
    assert digest["vocab.json"].startswith("196139668be63f3b")
    assert digest["merges.txt"].startswith("1ce1664773c50f3e")
    assert gpt2_tokenizer.encode(SENTENCE) == SENTENCE_IDS


def test_ioi_roles_with_the_gpt2_tokenizer(gpt2_tokenizer):
    names = single_token_names(NAMES, gpt2_tokenizer)
    assert len(names) >= 90  # almost every default name is one GPT-2 token
    prompts = ioi_prompts(200, tokenizer=gpt2_tokenizer, seed=0)
    for p in prompts:
        r, t = p.roles, p.tokens
        assert t[r["IO"]] == p.io_token and t[r["S1"]] == t[r["S2"]] == p.s_token
        assert gpt2_tokenizer.decode([p.io_token]).startswith(" ")
        assert r["S1+1"] == r["S1"] + 1 and r["END"] == len(t) - 1
        assert gpt2_tokenizer.encode(p.text) == list(t)
    first = ioi_prompts(
        1, tokenizer=gpt2_tokenizer, seed=0, order="BABA", names=["Mary", "John", "Amy"]
    )
    assert gpt2_tokenizer.decode(first[0].tokens).endswith(" to")


def test_multi_token_names_are_refused_for_gpt2(gpt2_tokenizer):
    with pytest.raises(ValueError, match="not: Zxqvbnm"):
        ioi_prompts(1, tokenizer=gpt2_tokenizer, names=["Mary", "John", "Zxqvbnm"])


def test_a_local_hugging_face_folder_loads_offline_and_traces(gpt2_folder):
    folder, hf_model = gpt2_folder
    model = load_model(str(folder))
    assert (model.n_layers, model.n_heads, model.d_model) == (2, 4, 64)
    prompts = ioi_prompts(12, tokenizer=model.tokenizer, seed=1)
    tokens, _ = pad_tokens(prompts)
    with torch.no_grad():
        expected = hf_model(tokens).logits.log_softmax(-1)
    torch.testing.assert_close(model.log_probs(tokens), expected, rtol=1e-4, atol=1e-4)
    seeds = parse_seeds("1.*", "END:*", n_heads=4)
    edges = [e for b in trace(model, prompts, seeds=seeds) for e in b.edge_records()]
    assert edges and {e.side for e in edges} == {"query", "key", "value", "inhibit"}  # default


def test_folders_that_are_not_models_are_refused(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelError, match="model_type 'bert' cannot be loaded.*gpt_neox, gptj"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelError, match="config.json does not describe a model"):
        load_model(str(tmp_path))
    with pytest.raises(ModelError, match="no model folder at ./missing"):
        load_model("./missing")


def test_hub_names_with_a_dot_are_names_not_folders(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("EleutherAI/gpt-neo-1.3B", "facebook/opt-1.3b"):
        with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
            load_model(name)


def test_a_model_missing_from_the_cache_fails_at_once_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache.*local folder"):
        load_model("gpt2-xl")


def hub_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(
    hub_reachable(), reason="the hub is reachable here: this checks the offline path"
)
def test_with_no_network_a_missing_model_fails_at_once_without_being_told(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelError, match="not in the local Hugging Face cache and the hub cannot"):
        load_model("gpt2-xl")
    # the offline switch was on for that load only: the process (a notebook) is as it was
    import os

    import huggingface_hub.constants

    assert "HF_HUB_OFFLINE" not in os.environ
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def gpt2_available() -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache("gpt2", "config.json"), str)
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not gpt2_available(),
    reason="GPT-2 small weights are not in the local "
    "Hugging Face cache and cannot be downloaded here (no network)",
)
def test_gpt2_small_name_mover_9_9_fires_end_to_io():
    # The paper: 9.9 fires END -> IO in 201 of 256 IOI prompts.
    model = load_model("gpt2")
    assert (model.n_layers, model.n_heads, model.d_model) == (12, 12, 768)
    prompts = ioi_prompts(64, tokenizer=model.tokenizer, seed=0)
    seeds = parse_seeds("9.9", "END:IO", n_heads=model.n_heads)
    firings = [f for b in trace(model, prompts, seeds=seeds) for f in b.firing_records()]
    seeded = {
        f.prompt_id for f in firings if f.head_name == "9.9" and f.traced and f.dest_role == "END"
    }
    assert len(seeded) > 32
