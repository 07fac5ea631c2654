"""Local Hugging Face folders of every architecture the tracer covers, built by ``transformers``
with random weights and a word-level tokenizer, loaded offline and traced."""

from __future__ import annotations

import pytest
import torch

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.trace import pad_tokens, trace
from headgraph.ingest.model import load_model
from headgraph.ingest.tasks.ioi import ioi_prompts, vocabulary

SMALL = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
             intermediate_size=128, max_position_embeddings=64)  # fmt: skip


def configs(vocab: int) -> dict:
    import transformers as t

    small = {**SMALL, "vocab_size": vocab}
    return {
        "llama": t.LlamaConfig(**small, num_key_value_heads=2),
        "mistral": t.MistralConfig(**small, num_key_value_heads=2),
        "qwen2": t.Qwen2Config(**small, num_key_value_heads=2),
        "gemma": t.GemmaConfig(**small, num_key_value_heads=2, head_dim=16),
        "gemma2": t.Gemma2Config(**small, num_key_value_heads=2, head_dim=16,
                                 query_pre_attn_scalar=16),
        "gpt_neox": t.GPTNeoXConfig(**small, rotary_pct=0.25),
        "gptj": t.GPTJConfig(n_embd=64, n_head=4, n_layer=2, n_positions=64, rotary_dim=8,
                             vocab_size=vocab),
        "gpt_neo": t.GPTNeoConfig(hidden_size=64, num_heads=4, num_layers=2, vocab_size=vocab,
                                  max_position_embeddings=64,
                                  attention_types=[[["global", "local"], 1]], window_size=8),
        "opt": t.OPTConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2,
                           ffn_dim=128, vocab_size=vocab, max_position_embeddings=64,
                           word_embed_proj_dim=64),
    }  # fmt: skip


def word_level_tokenizer():
    """A fast Hugging Face tokenizer over the IOI words (a leading space marks a word)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", *dict.fromkeys(vocabulary())]
    vocab = {w: i for i, w in enumerate(words)}
    vocab.update({"Ġ" + w: len(vocab) + i for i, w in enumerate(words[1:])})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")


@pytest.fixture(scope="module", params=["llama", "mistral", "qwen2", "gemma", "gemma2",
                                        "gpt_neox", "gptj", "gpt_neo", "opt"])  # fmt: skip
def folder(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    tokenizer = word_level_tokenizer()
    torch.manual_seed(0)
    hf_model = AutoModelForCausalLM.from_config(configs(len(tokenizer))[request.param]).eval()
    path = tmp_path_factory.mktemp(request.param)  # "llama" in the path, as users have it
    hf_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return request.param, path, hf_model


def test_a_folder_of_each_architecture_loads_offline_with_the_same_function(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name, path, hf_model = folder
    model = load_model(str(path))
    prompts = ioi_prompts(4, tokenizer=model.tokenizer, seed=1)
    tokens, lengths = pad_tokens(prompts)
    with torch.no_grad():
        expected = hf_model(tokens).logits.log_softmax(-1)
    torch.testing.assert_close(model.log_probs(tokens), expected, rtol=1e-4, atol=1e-4)
    assert prompts[0].answer is not None
    batches = list(trace(model, prompts, seeds=(), params=TraceParams(seeding="linear")))
    assert len(batches[0].firings) > 0 and batches[0].prediction is not None, name
