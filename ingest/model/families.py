"""Which architectures the method covers, and the standard processing of each.

The decomposition needs every attention input to be a sum of component outputs
(divided by the normalisation's scale) read through fixed query and key
weights, with the positions either in the residual stream (learned, GPT-2),
rotating the queries and keys (rotary), or added to the query and key inputs
only (shortformer). Anything else is refused by name, before weights are read.
No TransformerLens import here: these functions read a model's config and
weights through attributes.
"""

from __future__ import annotations

from typing import Any

from headgraph.errors import ModelError

# (family, TransformerLens / Hugging Face architectures, what the tracer handles)
FAMILIES = (
    ("GPT-2, GPT-Neo, OPT", "gpt2, gpt_neo, opt", "learned positions, LayerNorm"),
    ("Pythia / GPT-NeoX, GPT-J", "gpt_neox, gptj",
     "rotary positions (partial rotary_dim), parallel attention and MLP"),
    ("Llama, Mistral, Qwen2", "llama, mistral, qwen2",
     "rotary positions, RMSNorm, grouped-query attention, gated MLP"),
    ("Gemma, Gemma 2", "gemma, gemma2",
     "embedding scale, RMSNorm before and after each block, attention and logit soft-capping"),
    ("Attention-only (TransformerLens Attn_Only_*)", "shortformer",
     "positions added to the queries and keys only"),
)  # fmt: skip

SUPPORTED = "; ".join(f"{name} ({what})" for name, _, what in FAMILIES)

# config field -> why a model that sets it cannot be traced
_REFUSED = {
    "use_qk_norm": "normalises queries and keys per head (qk-norm), which is not linear",
    "clip_qkv": "clips queries, keys and values, which is not linear",
    "use_logn_attn": "rescales queries by log position (log-n attention)",
    "use_dynamic_ntk_rope": "rescales its rotary tables with the prompt length",
    "post_embedding_ln": "normalises the embeddings before the first block (BLOOM)",
}


def check_supported(cfg: Any, name: str) -> None:
    """Refuse, naming the feature, a model whose architecture the method does not cover.

    Reads only the config, so a refusal comes before any weights are loaded.

    Raises:
        ModelError: the missing feature, and the list of supported families.
    """
    problem = None
    position = cfg.positional_embedding_type
    if position not in ("standard", "rotary", "shortformer"):
        problem = f"uses {position} positions, which add a bias to each score"
    elif cfg.normalization_type not in ("LN", "LNPre", "RMS", "RMSPre"):
        problem = f"normalises with {cfg.normalization_type!r} (needs LayerNorm or RMSNorm)"
    elif getattr(cfg, "attention_dir", "causal") != "causal":
        problem = "attends in both directions (needs a causal decoder)"
    elif getattr(cfg, "original_architecture", None) in ("Olmo2ForCausalLM", "Olmo3ForCausalLM"):
        problem = "normalises after each block (post-norm)"
    else:
        problem = next((why for field, why in _REFUSED.items() if getattr(cfg, field, None)), None)
    if problem:
        raise ModelError(f"{name} {problem}: not supported. Supported: {SUPPORTED}")


def _centred(weights, dim: int = -1) -> bool:
    """Whether ``weights`` has (numerically) zero mean along ``dim``."""
    scale = float(weights.abs().max()) or 1.0
    return float(weights.mean(dim).abs().max()) <= 1e-5 * scale


def logit_cap(cfg: Any) -> float:
    """The logits' soft cap, or 0 when they are not capped (TransformerLens writes -1)."""
    return max(float(getattr(cfg, "output_logits_soft_cap", 0) or 0), 0.0)


def _steps(cfg: Any) -> dict[str, bool]:
    """Which standard processing steps apply to this architecture.

    - fold_ln: not in shortformer models, whose positions join after ln1.
    - center_writing_weights: only under LayerNorm (RMSNorm does not centre), and
      not in shortformer models (centring their positional table changes the function).
    - center_unembed: not when the logits are soft-capped (the cap is not shift-invariant).
    """
    shortformer = cfg.positional_embedding_type == "shortformer"
    return {
        "fold_ln": cfg.normalization_type in ("LN", "RMS") and not shortformer,
        "center_writing_weights": cfg.normalization_type in ("LN", "LNPre") and not shortformer,
        "center_unembed": not logit_cap(cfg),
        "fold_value_biases": True,
    }


def processing_steps(hooked) -> list[str]:
    """The standard processing steps a ``HookedTransformer`` still lacks (empty when done)."""
    m, cfg = hooked, hooked.cfg
    steps, missing = _steps(cfg), []
    if steps["fold_ln"]:
        missing.append("fold_ln")
    writers = [m.W_E, m.W_O, m.b_O]
    if cfg.positional_embedding_type == "standard":
        writers.append(m.W_pos)
    if not cfg.attn_only:
        writers += [m.W_out, m.b_out]
    if steps["center_writing_weights"] and not all(_centred(w.detach()) for w in writers):
        missing.append("center_writing_weights")
    if steps["center_unembed"] and not _centred(m.W_U.detach()):
        missing.append("center_unembed")
    if bool(m.b_V.detach().any()):
        missing.append("fold_value_biases")
    return missing


def process(hooked):
    """Process a ``HookedTransformer``'s weights in place, the standard way; returns it."""
    hooked.load_and_process_state_dict(hooked.state_dict(), **_steps(hooked.cfg))
    return hooked
