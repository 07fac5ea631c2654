"""Forward passes with changes: the hooks that causal checks use (part of the adapter).

:class:`~headgraph.ingest.model.adapter.Model` inherits these methods. They
name TransformerLens hook points but import nothing from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class Interventions:
    """Log-probabilities of a model with component outputs or head inputs changed."""

    hooked: Any  # a HookedTransformer
    layout: Any  # a ComponentLayout
    device: Any

    @torch.inference_mode()
    def log_probs(
        self, tokens: Tensor, deltas: Tensor | dict | None = None, *, at: Tensor | None = None
    ) -> Tensor:
        """Next-token log-probabilities, ``[batch, pos, vocab]`` (``[batch, vocab]`` with ``at``).

        Args:
            tokens: ``[batch, pos]``.
            deltas: ``[batch, pos, component, d_model]`` added to each component's
                output where it writes (see :mod:`headgraph.ingest.causal.intervene`), or the same
                sparsely, ``{component index: [batch, pos, d_model]}``, or None.
            at: ``[batch]`` one position per prompt: unembed only there (much faster).
        """
        hooks = []
        if deltas is None:
            return self._final(tokens, hooks, at)
        for hook, axis in self._write_hooks().items():
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
        """Like :meth:`log_probs`, with changes that only one head's query, key or value
        input sees: ``deltas[(layer, head, side)]`` is ``[batch, pos, d_model]``, added to
        that head's input before ln1 (``side`` ``query``, ``key`` or ``value``, or ``inhibit``:
        the key input, where an inhibition reads; with grouped key/value heads, a key or
        value change reaches the heads of its group)."""
        m = self.hooked
        hooks = []
        n_heads = m.cfg.n_heads
        for (layer, head, side), change in deltas.items():
            moved = change.to(self.device)

            def add(act, hook, head=head, delta=moved):  # act: [batch, pos, head, d_model]
                act = act.clone()
                act[:, :, head * act.shape[2] // n_heads] += delta  # a grouped head's group
                return act

            letter = {"query": "q", "key": "k", "value": "v", "inhibit": "k"}[side]
            hooks.append((f"blocks.{layer}.hook_{letter}_input", add))
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
