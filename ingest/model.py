"""The TransformerLens adapter: the only module that imports transformer_lens.

It loads or builds a ``HookedTransformer``, processes its weights the standard
way (fold_ln, center_writing_weights, center_unembed, fold_value_biases; after
that every component writes a zero-mean vector and the attention input is
``resid_pre / scale``), and turns one forward pass into an
:class:`ingest.activations.Activations` record of plain tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from ingest.activations import Activations
from ingest.components import ComponentLayout
from ingest.svd import QKDecomposition, decompose_qk
from ingest.tokenizer import Tokenizer


class ModelError(ValueError):
    """A model that cannot be loaded or that the method does not apply to."""


@dataclass(frozen=True)
class Architecture:
    """Shape of a GPT-2-style model built from scratch.

    ``d_mlp=None`` builds an attention-only model. ``init_range`` is the standard
    deviation of the random weights (TransformerLens's ``0.8 / sqrt(d_model)``
    when None, which leaves attention nearly uniform: no head fires).
    """

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: int | None = None
    act_fn: str = "gelu_new"
    init_range: float | None = None


# Random weights scaled so that attention is peaked as in trained models: about
# half of all (head, destination) pairs fire, a busy case for the tracer.
PRESETS = {
    "gpt2-small": Architecture(12, 12, 768, 64, 50257, 1024, 3072, init_range=0.07),
    "tiny": Architecture(2, 4, 64, 16, 512, 64, None, init_range=0.3),
}


class HFTokenizer:
    """A Hugging Face tokenizer seen through the :class:`Tokenizer` protocol (no BOS)."""

    def __init__(self, tokenizer):
        self.hf = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids))


class Model:
    """A processed TransformerLens model, as the method needs it.

    Attributes:
        name: Where it came from (a model name, a preset, ``built``).
        tokenizer: Its tokenizer (see :mod:`ingest.tokenizer`).
        layout: Its component axis.
    """

    def __init__(self, hooked, tokenizer: Tokenizer, name: str):
        cfg = hooked.cfg
        if cfg.positional_embedding_type != "standard":
            raise ModelError(
                f"{name} uses {cfg.positional_embedding_type} positions: the augmented QK "
                "decomposition needs learned absolute positional embeddings (GPT-2 style)"
            )
        if getattr(cfg, "parallel_attn_mlp", False) or getattr(cfg, "n_key_value_heads", None):
            raise ModelError(
                f"{name}: parallel attention/MLP and grouped-query attention are not supported"
            )
        if cfg.normalization_type not in ("LN", "LNPre"):
            raise ModelError(
                f"{name}: needs LayerNorm before attention, got {cfg.normalization_type}"
            )
        self.hooked = hooked.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.layout = ComponentLayout(cfg.n_layers, cfg.n_heads, has_mlp=not cfg.attn_only)

    n_layers = property(lambda self: self.hooked.cfg.n_layers)
    n_heads = property(lambda self: self.hooked.cfg.n_heads)
    d_model = property(lambda self: self.hooked.cfg.d_model)
    d_head = property(lambda self: self.hooked.cfg.d_head)
    n_ctx = property(lambda self: self.hooked.cfg.n_ctx)
    device = property(lambda self: self.hooked.cfg.device)

    def qk_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``W_Q, W_K [layer, head, d_model, d_head]`` and ``b_Q, b_K [layer, head, d_head]``."""
        m = self.hooked
        return m.W_Q.detach(), m.W_K.detach(), m.b_Q.detach(), m.b_K.detach()

    @property
    def token_embeddings(self) -> Tensor:
        """``[vocab, d_model]`` token embeddings as layer 0's attention reads them (ln1's
        centring and scaling; its weights are folded into W_Q and W_K)."""
        x = self.hooked.W_E.detach()
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + self.hooked.cfg.eps).sqrt()

    @cached_property
    def qk(self) -> QKDecomposition:
        """The augmented QK decomposition of every head (float64, computed once per model).

        Through the factors it takes well under a second for GPT-2 small, less
        than reading ~100 MB of cached factors back from disk, so it is kept in
        memory only.
        """
        return decompose_qk(*(t.cpu() for t in self.qk_weights()))

    def _hook_names(self) -> list[str]:
        names = ["hook_embed", "hook_pos_embed"]
        for l in range(self.n_layers):
            names += [
                f"blocks.{l}.ln1.hook_normalized",
                f"blocks.{l}.ln1.hook_scale",
                f"blocks.{l}.attn.hook_pattern",
                f"blocks.{l}.attn.hook_z",
            ]
            if self.layout.has_mlp:
                names.append(f"blocks.{l}.hook_mlp_out")
        return names

    @torch.inference_mode()
    def run(self, tokens: Tensor, lengths: Tensor | None = None) -> Activations:
        """One forward pass, caching only what the method reads.

        Args:
            tokens: ``[batch, pos]`` right-padded token ids.
            lengths: ``[batch]`` real lengths (default: all of ``pos``).
        """
        m = self.hooked
        tokens = tokens.to(self.device)
        names = set(self._hook_names())
        _, cache = m.run_with_cache(tokens, names_filter=lambda n: n in names, return_type=None)
        batch, pos = tokens.shape
        per_layer = []
        for l in range(self.n_layers):
            z = cache[f"blocks.{l}.attn.hook_z"]  # [batch, pos, head, d_head]
            heads = torch.einsum("bphe,hed->bphd", z, m.W_O[l])  # [batch, pos, head, d_model]
            parts = [heads, m.b_O[l].expand(batch, pos, 1, -1)]
            if self.layout.has_mlp:
                parts.append(cache[f"blocks.{l}.hook_mlp_out"].unsqueeze(2))
            per_layer.append(torch.cat(parts, dim=2))
        embeddings = [
            cache["hook_embed"].unsqueeze(2),
            cache["hook_pos_embed"].expand(batch, pos, -1).unsqueeze(2),
        ]
        layers = range(self.n_layers)
        return Activations(
            normalized=torch.stack([cache[f"blocks.{l}.ln1.hook_normalized"] for l in layers], 1),
            scale=torch.stack([cache[f"blocks.{l}.ln1.hook_scale"][..., 0] for l in layers], 1),
            pattern=torch.stack([cache[f"blocks.{l}.attn.hook_pattern"] for l in layers], 1),
            components=torch.cat(embeddings + per_layer, dim=2),
            lengths=(lengths if lengths is not None else torch.full((batch,), pos)).to(self.device),
        )

    @torch.inference_mode()
    def per_layer(self, tokens: Tensor, hook: str) -> Tensor:
        """One hook of every layer, stacked on dim 1 (``hook`` as in ``blocks.L.{hook}``)."""
        names = [f"blocks.{l}.{hook}" for l in range(self.n_layers)]
        _, cache = self.hooked.run_with_cache(
            tokens.to(self.device), names_filter=lambda n: n in names, return_type=None
        )
        return torch.stack([cache[n] for n in names], dim=1)

    def attention_scores(self, tokens: Tensor) -> Tensor:
        """TransformerLens's unscaled scores q.k ``[batch, layer, head, dest, src]`` (checks)."""
        return (
            self.per_layer(tokens, "attn.hook_attn_scores") * self.hooked.blocks[0].attn.attn_scale
        )

    def residuals(self, tokens: Tensor) -> Tensor:
        """``[batch, layer, pos, d_model]`` each layer's ``resid_pre`` (for checks)."""
        return self.per_layer(tokens, "hook_resid_pre")

    @torch.inference_mode()
    def log_probs(
        self, tokens: Tensor, deltas: Tensor | dict | None = None, *, at: Tensor | None = None
    ) -> Tensor:
        """Next-token log-probabilities, ``[batch, pos, vocab]`` (``[batch, vocab]`` with ``at``).

        Args:
            tokens: ``[batch, pos]``.
            deltas: ``[batch, pos, component, d_model]`` added to each component's
                output where it writes (see :mod:`ingest.intervene`), or the same
                sparsely, ``{component index: [batch, pos, d_model]}``, or None.
            at: ``[batch]`` one position per prompt: unembed only there (much faster).
        """
        hooks = []
        for hook, axis in self._write_hooks().items() if deltas is not None else ():
            if isinstance(deltas, dict):
                parts = [deltas[c] for c in axis if c in deltas]
                added = sum(parts[1:], parts[0]).to(self.device) if parts else None
            else:
                added = deltas[:, :, axis].sum(dim=2).to(self.device)
            if added is not None and added.any():
                hooks.append((hook, lambda act, hook, added=added: act + added))
        return self._final(tokens, hooks, at)

    @torch.inference_mode()
    def log_probs_at_heads(
        self,
        tokens: Tensor,
        deltas: dict[tuple[int, int, str], Tensor],
        *,
        at: Tensor | None = None,
    ) -> Tensor:
        """Like :meth:`log_probs`, with changes that only one head's query or key sees:
        ``deltas[(layer, head, side)]`` is ``[batch, pos, d_model]``, added to that head's
        input before ln1 (``side`` ``query`` or ``key``)."""
        m = self.hooked
        hooks = []
        for (layer, head, side), change in deltas.items():
            moved = change.to(self.device)

            def add(act, hook, head=head, delta=moved):  # act: [batch, pos, head, d_model]
                act = act.clone()
                act[:, :, head] += delta
                return act

            hooks.append((f"blocks.{layer}.hook_{'q' if side == 'query' else 'k'}_input", add))
        previous = m.cfg.use_split_qkv_input
        m.set_use_split_qkv_input(True)
        try:
            return self._final(tokens, hooks, at)
        finally:
            m.set_use_split_qkv_input(previous)

    def _final(self, tokens: Tensor, hooks: list, at: Tensor | None) -> Tensor:
        """Run with ``hooks``; log-softmax of the logits everywhere, or only at ``at``."""
        m, tokens = self.hooked, tokens.to(self.device)
        if at is None:
            return m.run_with_hooks(tokens, fwd_hooks=hooks).log_softmax(-1)
        rows, kept = torch.arange(len(tokens), device=self.device), {}

        def keep(act, hook):  # [batch, pos, d_model], after ln_final
            kept["x"] = act[rows, at.to(self.device)]

        m.run_with_hooks(
            tokens, return_type=None, fwd_hooks=[*hooks, ("ln_final.hook_normalized", keep)]
        )
        return m.unembed(kept["x"][:, None])[:, 0].log_softmax(-1)  # [batch, vocab]

    def _write_hooks(self) -> dict[str, list[int]]:
        """Where each component's output enters the residual stream: hook -> axis positions."""
        hooks: dict[str, list[int]] = {"hook_embed": [], "hook_pos_embed": []}
        for index, c in enumerate(self.layout.components):
            if c.kind in ("embed", "pos_embed"):
                name = f"hook_{c.kind}"
            else:
                name = f"blocks.{c.layer}.hook_{'mlp' if c.kind == 'mlp' else 'attn'}_out"
            hooks.setdefault(name, []).append(index)
        return hooks


def _processed(hooked, process: bool):
    if process:
        hooked.load_and_process_state_dict(
            hooked.state_dict(),
            fold_ln=True,
            center_writing_weights=True,
            center_unembed=True,
            fold_value_biases=True,
        )
    return hooked


def build_model(
    arch: Architecture,
    *,
    tokenizer: Tokenizer,
    seed: int = 0,
    state_dict: Mapping[str, Tensor] | None = None,
    process: bool = True,
    device: str = "cpu",
    name: str = "built",
) -> Model:
    """Build a GPT-2-style model from its architecture.

    Args:
        arch: Its shape.
        tokenizer: Its tokenizer (ids must fit ``arch.d_vocab``).
        seed: Seed of the random initialisation.
        state_dict: Weights to load instead (unprocessed, TransformerLens names).
        process: Fold and centre the weights (the method needs it; False only for checks).
        device: ``cpu`` or ``cuda``.
        name: Shown in messages and recorded on runs.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    fields = asdict(arch)
    d_mlp, init_range = fields.pop("d_mlp"), fields.pop("init_range")
    cfg = HookedTransformerConfig(
        **fields,
        d_mlp=d_mlp,
        attn_only=d_mlp is None,
        normalization_type="LN",
        seed=seed,
        initializer_range=init_range if init_range is not None else -1.0,
        device=device,
        default_prepend_bos=False,
    )
    hooked = HookedTransformer(cfg, move_to_device=True)
    if state_dict is not None:
        hooked.load_state_dict(dict(state_dict))
    return Model(_processed(hooked, process), tokenizer, name)


HUB_HELP = (
    'download it once where there is network (python -c "from transformers import '
    "AutoModelForCausalLM as M; M.from_pretrained('gpt2')\") or pass a local folder: "
    "--model /path/to/gpt2"
)


def load_model(spec: str, *, device: str = "cpu") -> Model:
    """Load a model by name or folder.

    - ``tiny-ioi``: the bundled attention-only model trained on IOI (offline).
    - ``random:PRESET``: random weights of a preset shape (``gpt2-small``,
      ``tiny``) with a word-level IOI tokenizer, for benchmarks and smoke
      tests; it has no circuit.
    - a folder: a Hugging Face GPT-2-architecture model (``config.json``, the
      weights, the tokenizer files), read with no network.
    - any other name: a TransformerLens model name (``gpt2``), from the local
      Hugging Face cache or the hub. When the hub cannot be reached, the cache
      is used alone, so a missing model fails at once instead of after retries.

    Raises:
        ModelError: unknown preset, a folder that is not a model, or a model
            that cannot be had (with what to do).
    """
    if spec == "tiny-ioi":
        from ingest import tiny_ioi

        return tiny_ioi.load(device=device)
    if spec.startswith("random:"):
        preset = spec.removeprefix("random:")
        if preset not in PRESETS:
            raise ModelError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        from ingest.ioi import word_tokenizer

        return build_model(PRESETS[preset], tokenizer=word_tokenizer(), device=device, name=spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_folder(path, device)
    if spec.startswith((".", "/", "~")) or path.suffix:
        raise ModelError(
            f"no model folder at {spec}: give a folder holding config.json, "
            "the weights and the tokenizer files"
        )
    offline = _use_cache_only_if_offline()
    from transformer_lens import HookedTransformer

    try:
        hooked = HookedTransformer.from_pretrained(
            spec,
            fold_ln=True,
            center_writing_weights=True,
            center_unembed=True,
            fold_value_biases=True,
            device=device,
            default_prepend_bos=False,
        )
    except OSError as error:
        where = "the hub cannot be reached" if offline else f"loading failed ({error})"
        raise ModelError(
            f"could not load {spec!r}: it is not in the local Hugging Face cache "
            f"and {where}; {HUB_HELP}"
        ) from error
    except ValueError as error:
        raise ModelError(f"could not load {spec!r}: {str(error)[:300]}") from error
    return Model(hooked, HFTokenizer(hooked.tokenizer), spec)


def _use_cache_only_if_offline() -> bool:
    """Switch the Hugging Face libraries to their cache when the hub is unreachable.

    Without this, a machine with no network spends tens of seconds in retries
    before failing. Returns whether offline mode is on.
    """
    import socket

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
        except OSError:
            offline = True
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at import time otherwise
    return offline


def _load_folder(path: Path, device: str) -> Model:
    """A local Hugging Face GPT-2-architecture folder, through TransformerLens's converter."""
    import json

    config_file = path / "config.json"
    if not config_file.exists():
        raise ModelError(f"{path} is not a Hugging Face model folder: it has no config.json")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "gpt2":
        raise ModelError(
            f"{path}: model_type {model_type!r}; local folders must hold a GPT-2 "
            "architecture model (model_type gpt2)"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        hf_model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except OSError as error:
        raise ModelError(f"{path}: the weights cannot be read ({error})") from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as error:
        raise ModelError(
            f"{path}: no usable tokenizer files (vocab.json and merges.txt, or "
            f"tokenizer.json): {error}"
        ) from error
    c = hf_model.config  # transformers 5 configs lack n_ctx: n_positions is the context
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd,
        d_vocab=c.vocab_size,
        n_ctx=c.n_positions,
        act_fn=c.activation_function,
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=False,
        device=device,
    )
    hooked = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    hooked.load_and_process_state_dict(
        convert_gpt2_weights(hf_model, cfg),
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
    )
    return Model(hooked, HFTokenizer(tokenizer), str(path))
