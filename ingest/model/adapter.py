"""The TransformerLens adapter: the only module that imports transformer_lens.

It builds or loads a ``HookedTransformer``, makes sure its weights are
processed the standard way (fold_ln, center_writing_weights, center_unembed,
fold_value_biases; after that every component writes a zero-mean vector and
the attention input is ``resid_pre / scale``), and turns one forward pass into
an :class:`headgraph.ingest.core.activations.Activations` record of plain
tensors. A user's own model is processed on a copy, never in place, and never
traced unprocessed: the same function in another parametrisation gives other
edges. Which model to load, and from where, is :mod:`.loading`'s business.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from headgraph.errors import ModelError
from headgraph.ingest.core.activations import Activations
from headgraph.ingest.core.components import ComponentLayout
from headgraph.ingest.core.rotary import Rotary
from headgraph.ingest.core.svd import QKDecomposition, decompose_qk
from headgraph.ingest.core.values import ValueWeights
from headgraph.ingest.model.families import check_supported, process, processing_steps
from headgraph.ingest.model.fingerprint import fingerprint
from headgraph.ingest.model.hooks import Interventions
from headgraph.ingest.model.readout import readout_units, split_at_answers
from headgraph.ingest.model.tokenizer import Tokenizer


class Model(Interventions):
    """A processed TransformerLens model, as the method needs it.

    Build one with :func:`headgraph.load_model` (a name, a folder, ``tiny-ioi``)
    or :meth:`Model.from_hooked` (a ``HookedTransformer`` of your own).

    Attributes:
        name: Where it came from (a model name, a preset, ``built``).
        tokenizer: Its tokenizer (see :mod:`headgraph.ingest.model.tokenizer`).
        layout: Its component axis.
        card: The model card of a bundled model (its seeds, roles and accuracy), or None.
        source: The name or absolute path :func:`headgraph.load_model` loaded it from (the
            workers of a sharded ingest load it again from there), or None.
    """

    def __init__(self, hooked, tokenizer: Tokenizer, name: str):
        missing = processing_steps(hooked)
        if missing:
            raise ModelError(
                f"{name} is not processed ({', '.join(missing)} missing): use "
                "Model.from_hooked, which processes a copy"
            )
        self.hooked = hooked.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.card: dict | None = None  # a bundled model's card (seeds, roles, accuracy)
        self.source: str | None = None  # what load_model loaded it from, to load it again
        cfg = hooked.cfg
        self.layout = ComponentLayout(cfg.n_layers, cfg.n_heads, has_mlp=not cfg.attn_only)

    @classmethod
    def from_hooked(cls, hooked, *, tokenizer: Tokenizer | None = None, name: str | None = None):
        """A user's own ``HookedTransformer``, processed the standard way on a copy if needed.

        The model passed in is never changed. An unprocessed model is copied and
        processed (fold LayerNorm, centre writing weights and the unembedding,
        fold value biases): its function is the same, and the decomposition
        needs this parametrisation.

        Args:
            hooked: A ``HookedTransformer``.
            tokenizer: Its tokenizer (default: the model's own Hugging Face one).
            name: Recorded on runs (default: ``cfg.model_name``).

        Raises:
            ModelError: the architecture is not supported, or the model has no tokenizer.
        """
        check_supported(hooked.cfg, name or hooked.cfg.model_name)
        if tokenizer is None:
            if getattr(hooked, "tokenizer", None) is None:
                raise ModelError(
                    "the model has no tokenizer: pass tokenizer= (an object with encode and decode)"
                )
            from headgraph.ingest.model.tokenizer import HFTokenizer

            tokenizer = HFTokenizer(hooked.tokenizer)
        if processing_steps(hooked):
            hooked = process(copy.deepcopy(hooked))
        return cls(hooked, tokenizer, name or hooked.cfg.model_name)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the configuration and the processed weights (hex; see :mod:`.fingerprint`)."""
        return fingerprint(self.hooked.cfg, self.hooked.state_dict())

    @property
    def key(self) -> str:
        """How a store knows the model: its name and fingerprint, ``tiny-ioi@3f2a9c01b7de``.

        A retrained model, or another folder under the same name, is another key.
        """
        return f"{self.name}@{self.fingerprint[:12]}"

    n_layers = property(lambda self: self.hooked.cfg.n_layers)
    n_heads = property(lambda self: self.hooked.cfg.n_heads)
    d_model = property(lambda self: self.hooked.cfg.d_model)
    d_head = property(lambda self: self.hooked.cfg.d_head)
    n_ctx = property(lambda self: self.hooked.cfg.n_ctx)
    device = property(lambda self: self.hooked.cfg.device)
    dtype = property(lambda self: self.hooked.cfg.dtype)

    def qk_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``W_Q, W_K [layer, head, d_model, d_head]`` and ``b_Q, b_K [layer, head, d_head]``."""
        m = self.hooked
        return m.W_Q.detach(), m.W_K.detach(), m.b_Q.detach(), m.b_K.detach()

    @property
    def token_embeddings(self) -> Tensor:
        """``[vocab, d_model]`` token embeddings as layer 0's attention reads them (ln1's
        centring and scaling; its weights are folded into W_Q and W_K). Rotary heads
        read them at offset 0."""
        x = self.hooked.W_E.detach()
        if self.hooked.cfg.normalization_type in ("LN", "LNPre"):
            x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + self.hooked.cfg.eps).sqrt()

    @cached_property
    def qk(self) -> QKDecomposition:
        """The augmented QK decomposition of every head (float64, computed once per model).

        Through the factors it takes under a second for GPT-2 small (0.9 s), less
        than reading ~100 MB of cached factors back from disk, so it is kept in
        memory only.
        """
        return decompose_qk(*(t.cpu() for t in self.qk_weights()))

    @cached_property
    def values(self) -> ValueWeights:
        """Every head's ``W_V``, ``b_V`` and ``W_O`` (grouped key/value heads expanded)."""
        m = self.hooked
        return ValueWeights(m.W_V.detach(), m.b_V.detach(), m.W_O.detach())

    def _hook_names(self) -> list[str]:
        """The hooks kept whole (each linear in the prompt's length)."""
        names = ["hook_embed", "hook_pos_embed"]
        for l in range(self.n_layers):
            names += [f"blocks.{l}.ln1.hook_normalized", f"blocks.{l}.ln1.hook_scale"]
            if self.hooked.cfg.use_normalization_before_and_after:
                names.append(f"blocks.{l}.ln1_post.hook_scale")
        return names

    @property
    def shortformer(self) -> bool:
        """Positions reach only the queries and keys, after ln1 (TransformerLens's Attn_Only)."""
        return self.hooked.cfg.positional_embedding_type == "shortformer"

    @torch.inference_mode()
    def run(
        self,
        tokens: Tensor,
        lengths: Tensor | None = None,
        *,
        answers: Tensor | None = None,
        wrong: Tensor | None = None,
        readout: bool = False,
    ) -> Activations:
        """One forward pass, caching only what the method reads.

        Args:
            tokens: ``[batch, pos]`` right-padded token ids.
            lengths: ``[batch]`` real lengths (default: all of ``pos``).
            answers: ``[batch]`` the answer token of each prompt, predicted at its last
                token: the prediction is then split into components (seeding).
            wrong: ``[batch]`` the competing token (-1: none, the answer's logit alone).
            readout: Also read every unit the unembedding sees at the last token
                (probability-aware seeding).
        """
        m, cfg, layout = self.hooked, self.hooked.cfg, self.layout
        tokens = tokens.to(self.device)
        batch, pos = tokens.shape
        layers = range(self.n_layers)
        # Hooks write what grows with the prompts straight into its final tensor, a layer at a
        # time: outputs [batch, pos, component, d_model], patterns [batch, layer, head, pos, pos]
        components = torch.zeros(batch, pos, len(layout), cfg.d_model, dtype=self.dtype,
                                 device=self.device)  # fmt: skip
        pattern = torch.empty(batch, self.n_layers, self.n_heads, pos, pos, dtype=self.dtype,
                              device=self.device)  # fmt: skip
        # the heads' query, key (as scored: rotated) and value vectors, grouped ones repeated
        # for each query head, [batch, layer, pos, head, d_head]: read instead of x~ A again
        shape = (batch, self.n_layers, pos, self.n_heads, cfg.d_head)
        vectors = {side: torch.empty(shape, dtype=self.dtype, device=self.device) for side in "qkv"}
        cache: dict[str, Tensor] = {}

        def heads_out(z: Tensor, hook) -> None:  # z: [batch, pos, head, d_head]
            l = hook.layer()
            at = layout.head_index(l, 0)
            components[:, :, at : at + self.n_heads] = torch.einsum("bphe,hed->bphd", z, m.W_O[l])
            components[:, :, at + self.n_heads] = m.b_O[l]

        def mlp_out(out: Tensor, hook) -> None:
            components[:, :, layout.head_index(hook.layer(), 0) + self.n_heads + 1] = out

        def pattern_of(p: Tensor, hook) -> None:
            pattern[:, hook.layer()] = p

        def keep(t: Tensor, hook) -> None:
            cache[hook.name] = t

        def vectors_of(t: Tensor, hook) -> None:  # t: [batch, pos, head or key head, d_head]
            into = vectors[hook.name[-1]]
            into[:, hook.layer()] = t.repeat_interleave(self.n_heads // t.shape[2], dim=2)

        small = set(self._hook_names())
        if answers is not None or readout:
            small |= {"ln_final.hook_scale", "ln_final.hook_normalized"}
        hooks = [(name, keep) for name in small]
        for l in layers:
            hooks += [(f"blocks.{l}.attn.hook_z", heads_out)]
            hooks += [(f"blocks.{l}.attn.hook_pattern", pattern_of)]
            hooks += [(f"blocks.{l}.attn.{self._qk_hook}{side}", vectors_of) for side in "qk"]
            hooks += [(f"blocks.{l}.attn.hook_v", vectors_of)]
            hooks += [(f"blocks.{l}.hook_mlp_out", mlp_out)] if layout.has_mlp else []
        hooks = [(name, hook) for name, hook in hooks if name in m.hook_dict]  # rotary: no pos
        m.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks)
        gains = []
        if cfg.use_normalization_before_and_after:  # Gemma 2: RMSNorm of the heads' sum
            for l in layers:  # a frozen scale: linear in each head's output
                post = m.blocks[l].ln1_post.w / cache[f"blocks.{l}.ln1_post.hook_scale"]
                at = layout.head_index(l, 0)
                components[:, :, at : at + self.n_heads + 1] *= post.unsqueeze(2)
                gains.append(post)
        embed = cache["hook_embed"]  # [batch, pos, d_model]
        positions = cache["hook_pos_embed"] if "hook_pos_embed" in cache else 0 * embed
        components[:, :, 0], components[:, :, 1] = embed, positions
        normalized = torch.stack([cache[f"blocks.{l}.ln1.hook_normalized"] for l in layers], 1)
        ln_weight = ln_bias = None
        if self.shortformer:  # ln1 is not folded: x = ln1(resid) * w + b + positions
            # outputs less their mean over d_model (what LayerNorm sees), in place; not the
            # positions (added after the normalisation)
            for part in (components[:, :, :1], components[:, :, 2:]):
                part -= part.mean(-1, keepdim=True)
            ln_weight, ln_bias = (
                torch.stack([getattr(m.blocks[l].ln1, p).detach() for l in layers])
                for p in ("w", "b")
            )
            normalized = normalized * ln_weight[:, None] + ln_bias[:, None]
            normalized = normalized + positions.expand(batch, pos, -1).unsqueeze(1)
        lengths = (lengths if lengths is not None else torch.full((batch,), pos)).to(self.device)
        read = (self, cache, components, pattern, vectors["v"], lengths - 1)  # at the last token
        prediction = None if answers is None else split_at_answers(*read, answers, wrong)
        units = readout_units(*read) if readout else None
        return Activations(
            normalized=normalized,
            query_vectors=vectors["q"],
            key_vectors=vectors["k"],
            value_vectors=vectors["v"],
            scale=torch.stack([cache[f"blocks.{l}.ln1.hook_scale"][..., 0] for l in layers], 1),
            pattern=pattern,
            components=components,
            lengths=lengths,
            attn_scale=torch.tensor([float(block.attn.attn_scale) for block in self.hooked.blocks]),
            rotary=self._rotary(pos),
            ln_weight=ln_weight,
            ln_bias=ln_bias,
            positions_after_norm=self.shortformer,
            prediction=prediction,
            readout=units,
            values=self.values,
            head_gain=torch.stack(gains, 1) if gains else None,
        )

    def _rotary(self, n_pos: int) -> Rotary | None:
        """Each layer's rotary tables for ``n_pos`` positions (None without rotary positions)."""
        cfg = self.hooked.cfg
        if cfg.positional_embedding_type != "rotary":
            return None
        attns = [block.attn for block in self.hooked.blocks]
        if any(a.rotary_cos.shape[0] < n_pos for a in attns):
            raise ModelError(f"{self.name}: prompts of {n_pos} tokens exceed its rotary tables")
        return Rotary(
            cos=torch.stack([a.rotary_cos[:n_pos] for a in attns]),
            sin=torch.stack([a.rotary_sin[:n_pos] for a in attns]),
            adjacent=bool(cfg.rotary_adjacent_pairs),
        )

    @torch.inference_mode()
    def per_layer(self, tokens: Tensor, hook: str) -> Tensor:
        """One hook of every layer, stacked on dim 1 (``hook`` as in ``blocks.L.{hook}``)."""
        names = [f"blocks.{l}.{hook}" for l in range(self.n_layers)]
        _, cache = self.hooked.run_with_cache(
            tokens.to(self.device), names_filter=lambda n: n in names, return_type=None
        )
        return torch.stack([cache[n] for n in names], dim=1)

    @property
    def _qk_hook(self) -> str:  # the hooks of the query and key vectors as scored, less q or k
        return "hook_rot_" if self.hooked.cfg.positional_embedding_type == "rotary" else "hook_"

    def attention_scores(self, tokens: Tensor) -> Tensor:
        """TransformerLens's own unscaled scores ``q . k`` ``[batch, layer, head, dest, src]``,
        from its (rotated) query and key vectors, before any scale, cap or mask (checks)."""
        q = self.per_layer(tokens, f"attn.{self._qk_hook}q")
        k = self.per_layer(tokens, f"attn.{self._qk_hook}k")
        k = k.repeat_interleave(q.shape[3] // k.shape[3], dim=3)  # grouped-query: share keys
        return torch.einsum("blqhe,blkhe->blhqk", q, k)

    def residuals(self, tokens: Tensor) -> Tensor:
        """``[batch, layer, pos, d_model]`` each layer's ``resid_pre`` (for checks)."""
        return self.per_layer(tokens, "hook_resid_pre")


def new_hooked(*, tokenizer=None, **config: Any):
    """A ``HookedTransformer`` with random weights from config fields (unprocessed)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    return HookedTransformer(
        HookedTransformerConfig(**config), tokenizer=tokenizer, move_to_device=True
    )


def load_weights(hooked, state_dict: Mapping[str, Tensor]):
    """Load TransformerLens-named weights into ``hooked`` (unprocessed); returns it."""
    hooked.load_state_dict(dict(state_dict))
    return hooked


def pretrained_hooked(name: str, *, device: str):
    """A TransformerLens model by its official name, processed (hub or local cache).

    Raises:
        OSError: it is neither cached nor reachable. ValueError: an unknown name.
    """
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    check_supported(get_pretrained_model_config(name), name)  # the config only: no weights yet
    hooked = HookedTransformer.from_pretrained_no_processing(
        name, device=device, default_prepend_bos=False
    )
    return process(hooked)


def gpt2_weights(hf_model, hooked) -> dict[str, Tensor]:
    """A Hugging Face GPT-2 model's weights under TransformerLens's names."""
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights

    return convert_gpt2_weights(hf_model, hooked.cfg)


def folder_config(path: str):
    """The TransformerLens config of a local Hugging Face folder, from its config.json alone.

    TransformerLens picks some architectures by the name (``llama``, ``gemma`` in a path
    selects hard-coded shapes), so the folder is read through a neutral link.
    """
    import tempfile
    from pathlib import Path

    from transformer_lens import HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    from headgraph.ingest.model.gemma import gemma_config

    with tempfile.TemporaryDirectory() as tmp:
        neutral = Path(tmp) / "model"
        neutral.symlink_to(Path(path).resolve(), target_is_directory=True)
        try:
            config = gemma_config(str(neutral)) or convert_hf_model_config(str(neutral))
        except Exception as error:  # noqa: BLE001 - each architecture fails its own way
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ModelError(
                f"{path}: config.json does not describe a model TransformerLens can "
                f"convert ({first})"
            ) from None
    fields = HookedTransformerConfig.__dataclass_fields__
    skip = ("tokenizer_name", "default_prepend_bos")
    config = {k: v for k, v in config.items() if k in fields and k not in skip}
    return HookedTransformerConfig(**config, default_prepend_bos=False)


def folder_hooked(path: str, cfg, *, hf_model, tokenizer, device: str):
    """A ``HookedTransformer`` with a Hugging Face model's weights, converted by TransformerLens
    for its architecture and processed the standard way."""
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict

    state = get_pretrained_state_dict(path, cfg, hf_model=hf_model)
    hooked = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    hooked.load_and_process_state_dict(
        state, fold_ln=False, center_writing_weights=False, center_unembed=False,
        fold_value_biases=False,
    )  # fmt: skip
    return process(hooked.to(device))
