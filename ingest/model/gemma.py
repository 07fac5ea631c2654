"""Gemma and Gemma 2 folders as TransformerLens configs.

TransformerLens converts Gemma weights, but builds Gemma configs only from its
hub names, with their sizes written out. This maps a folder's own
``config.json`` to the same fields instead (read by ``transformers``; no
TransformerLens import here).
"""

from __future__ import annotations

from typing import Any


def gemma_config(path: str) -> dict[str, Any] | None:
    """A Gemma or Gemma 2 folder's TransformerLens config (TransformerLens knows Gemma by
    its hub names only, with their sizes written out); None for other architectures."""
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(path, local_files_only=True)
    if hf.model_type not in ("gemma", "gemma2"):
        return None
    rope = getattr(hf, "rope_parameters", None) or {}
    config: dict[str, Any] = {
        "d_model": hf.hidden_size, "d_head": hf.head_dim, "n_heads": hf.num_attention_heads,
        "d_mlp": hf.intermediate_size, "n_layers": hf.num_hidden_layers,
        "n_ctx": hf.max_position_embeddings, "eps": hf.rms_norm_eps, "d_vocab": hf.vocab_size,
        "act_fn": getattr(hf, "hidden_activation", None) or hf.hidden_act,
        "normalization_type": "RMS", "positional_embedding_type": "rotary",
        "rotary_base": rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0)),
        "rotary_dim": hf.head_dim, "n_key_value_heads": hf.num_key_value_heads,
        "gated_mlp": True, "final_rms": True, "use_attn_scale": True,
        "original_architecture": (hf.architectures or ["GemmaForCausalLM"])[0],
    }  # fmt: skip
    if hf.model_type == "gemma2":
        local = [t == "sliding_attention" for t in hf.layer_types]
        config |= {
            "use_normalization_before_and_after": True,
            "attn_scores_soft_cap": hf.attn_logit_softcapping or -1.0,
            "output_logits_soft_cap": hf.final_logit_softcapping or -1.0,
            "attn_scale": hf.query_pre_attn_scalar**0.5,
            "use_local_attn": any(local), "window_size": hf.sliding_window,
            "attn_types": ["local" if x else "global" for x in local],
        }  # fmt: skip
    return config
