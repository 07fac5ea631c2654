"""Reading the prediction out of a forward pass: the answer's logit split into components
(part of the adapter: it names TransformerLens hooks and weights, imports nothing from it).
"""

from __future__ import annotations

import torch

from headgraph.ingest.core.prob_seeding import Readout
from headgraph.ingest.core.seeding import PredictionSplit, split_prediction
from headgraph.ingest.model.families import logit_cap


def split_at_answers(model, cache, components, pattern, at, answers, wrong) -> PredictionSplit:
    """The logit difference at ``at`` split into components (see ``core.seeding``).

    Args:
        model: The :class:`~headgraph.ingest.model.adapter.Model`.
        cache: The forward pass's cache (with ``hook_v`` and ``ln_final``'s hooks).
        components: ``[batch, pos, component, d_model]``.
        pattern: ``[batch, layer, head, dest, src]``.
        at: ``[batch]`` the answer positions.
        answers, wrong: ``[batch]`` or ``[batch, n]`` token ids (-1: padding); several
            answers (greater-than: every later year) are read by their mean logit, as
            are several wrong ones; no wrong answer: the answers' logit alone.
    """
    m, cfg = model.hooked, model.hooked.cfg
    rows = torch.arange(len(at), device=model.device)
    answers = _sets(answers, model.device)
    wrong = _sets(torch.full_like(answers[:, :1], -1) if wrong is None else wrong, model.device)
    W_U, b_U = m.W_U.detach(), m.b_U.detach()  # [d_model, vocab], [vocab]
    direction = _mean_of(W_U.T, answers) - _mean_of(W_U.T, wrong)  # [batch, d_model]
    bias = _mean_of(b_U[:, None], answers)[:, 0] - _mean_of(b_U[:, None], wrong)[:, 0]
    final = m.ln_final
    if hasattr(final, "w"):  # an unfolded final LayerNorm (shortformer)
        bias = bias + direction @ final.b.detach()
        direction = direction * final.w.detach()
    if model.shortformer:  # outputs were centred as LayerNorm sees them: centre the reading
        direction = direction - direction.mean(-1, keepdim=True)
    layers = range(model.n_layers)
    values = torch.stack([cache[f"blocks.{l}.attn.hook_v"] for l in layers], 1)
    values = values.repeat_interleave(model.n_heads // values.shape[3], dim=3)  # grouped
    gain = None
    if cfg.use_normalization_before_and_after:
        gain = torch.stack(
            [m.blocks[l].ln1_post.w / cache[f"blocks.{l}.ln1_post.hook_scale"][rows, at]
             for l in layers], 1,
        )  # fmt: skip
    components_at = components[rows, at].clone()  # [batch, component, d_model]
    if model.shortformer:
        components_at[:, 1] = 0.0  # positions are not in the residual stream
    heads, shares = split_prediction(
        pattern_at=pattern[rows, :, :, at],
        values=values,
        output_weights=m.W_O.detach(),
        components_at=components_at,
        direction=direction,
        scale=cache["ln_final.hook_scale"][rows, at, 0],
        head_gain=gain,
    )
    x = cache["ln_final.hook_normalized"][rows, at]  # [batch, d_model]
    if hasattr(final, "w"):
        x = x * final.w + final.b
    logits = m.unembed(x[:, None])[:, 0]  # [batch, vocab], after any soft cap
    return PredictionSplit(at, heads, shares, bias, prefers(logits, answers, wrong))


def _sets(tokens, device) -> torch.Tensor:
    """``[batch, n]`` token sets (-1 padding) from ``[batch]`` or ``[batch, n]``."""
    tokens = tokens.to(device)
    return tokens[:, None] if tokens.dim() == 1 else tokens


def _mean_of(table: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """``[batch, width]`` the mean of ``table``'s rows over each set (zero for an empty set)."""
    picked = table[sets.clamp_min(0)] * (sets >= 0)[..., None]  # [batch, n, width]
    return picked.sum(1) / (sets >= 0).sum(1, keepdim=True).clamp_min(1)


def prefers(logits: torch.Tensor, answers: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """``[batch]`` bool: the answers hold more probability than the wrong ones, or, with no
    wrong answer, the top token is an answer."""
    probs = logits.softmax(-1)
    mass = [(probs.gather(1, s.clamp_min(0)) * (s >= 0)).sum(1) for s in (answers, wrong)]
    top = (logits.argmax(-1, keepdim=True) == answers).any(1)
    return torch.where((wrong >= 0).any(1), mass[0] > mass[1], top)


def readout_units(model, cache, components, pattern, at) -> Readout:
    """Every unit the unembedding reads at ``at``: heads by source token, other components,
    each divided by the final normalisation's scale (see ``core.prob_seeding``)."""
    m, cfg = model.hooked, model.hooked.cfg
    rows = torch.arange(len(at), device=model.device)
    layers = range(model.n_layers)
    scale = cache["ln_final.hook_scale"][rows, at, 0]  # [batch]
    values = torch.stack([cache[f"blocks.{l}.attn.hook_v"] for l in layers], 1)
    values = values.repeat_interleave(model.n_heads // values.shape[3], dim=3)
    moved = torch.einsum("blshe,lhem->blhsm", values, m.W_O.detach())  # [b, l, h, src, d]
    if cfg.use_normalization_before_and_after:
        gain = torch.stack(
            [m.blocks[l].ln1_post.w / cache[f"blocks.{l}.ln1_post.hook_scale"][rows, at]
             for l in layers], 1,
        )  # fmt: skip
        moved = moved * gain[:, :, None, None, :]
    heads = pattern[rows, :, :, at][..., None] * moved / scale[:, None, None, None, None]
    others = components[rows, at] / scale[:, None, None]  # [batch, component, d_model]
    is_head = torch.tensor([c.kind == "head" for c in model.layout.components])
    others[:, is_head] = 0.0
    if model.shortformer:
        others[:, 1] = 0.0  # positions are not in the residual stream
    unembed, bias = m.W_U.detach(), m.b_U.detach()
    final = m.ln_final
    if hasattr(final, "w"):  # an unfolded final LayerNorm (shortformer)
        bias = bias + final.b.detach() @ unembed
        unembed = final.w.detach()[:, None] * unembed
    return Readout(heads, others, unembed, bias, logit_cap(cfg))
