"""Reading the prediction out of a forward pass: the answer's logit split into components
(part of the adapter: it names TransformerLens hooks and weights, imports nothing from it).
"""

from __future__ import annotations

import torch

from headgraph.ingest.core.final_norm import FinalNorm
from headgraph.ingest.core.prob_seeding import Readout
from headgraph.ingest.core.seeding import PredictionSplit, split_prediction
from headgraph.ingest.model.families import logit_cap


def split_at_answers(
    model, cache, components, pattern, values, at, answers, wrong
) -> PredictionSplit:
    """The logit difference at ``at`` split into components (see ``core.seeding``).

    Args:
        model: The :class:`~headgraph.ingest.model.adapter.Model`.
        cache: The forward pass's cache (with ``ln_final``'s hooks).
        components: ``[batch, pos, component, d_model]``.
        pattern: ``[batch, layer, head, dest, src]``.
        values: ``[batch, layer, src, head, d_head]`` value vectors (grouped ones repeated).
        at: ``[batch]`` the answer positions.
        answers, wrong: ``[batch]`` or ``[batch, n]`` token ids (-1: padding); several
            answers (greater-than: every later year) are read by their mean logit, as
            are several wrong ones; no wrong answer: the answers' logit alone.
    """
    m = model.hooked
    rows = torch.arange(len(at), device=model.device)
    answers = _sets(answers, model.device)
    wrong = _sets(torch.full_like(answers[:, :1], -1) if wrong is None else wrong, model.device)
    unembed, unembed_bias = _unembedding(model)  # [d_model, vocab], [vocab]
    table = torch.cat([unembed.T, unembed_bias[:, None]], dim=1)  # [vocab, d_model+1]
    reading = _mean_of(table, answers) - _mean_of(table, wrong)  # [batch, d_model+1]
    direction, bias = reading[:, :-1], reading[:, -1]
    scale = cache["ln_final.hook_scale"][rows, at, 0]  # [batch]
    heads, shares = split_prediction(
        pattern_at=pattern[rows, :, :, at],
        values=values,
        output_weights=m.W_O.detach(),
        components_at=_residual_parts(model, components, rows, at),
        direction=direction,
        scale=scale,
        head_gain=_post_gain(model, cache, rows, at),
    )
    x = cache["ln_final.hook_normalized"][rows, at]  # [batch, d_model]
    final = _final_norm(model, x, scale)
    if hasattr(m.ln_final, "w"):
        x = x * m.ln_final.w + m.ln_final.b
    logits = m.unembed(x[:, None])[:, 0]  # [batch, vocab], after any soft cap
    correct = prefers(logits, answers, wrong)
    reader = direction / scale[:, None]
    return PredictionSplit(at, heads, shares, bias, correct, reader=reader, final=final)


def _final_norm(model, normalized: torch.Tensor, scale: torch.Tensor) -> FinalNorm:
    """The final residual as the final norm reads it, from its output ``[batch, d_model]``
    and scale ``[batch]``."""
    cfg = model.hooked.cfg
    centred = cfg.normalization_type in ("LN", "LNPre") and not cfg.final_rms
    return FinalNorm(normalized * scale[:, None], centred=centred, eps=cfg.eps)


def _post_gain(model, cache, rows, at) -> torch.Tensor | None:
    """``[batch, layer, d_model]`` the frozen RMSNorm after each attention block at ``at``
    (Gemma 2), or None."""
    m = model.hooked
    if not m.cfg.use_normalization_before_and_after:
        return None
    return torch.stack(
        [m.blocks[l].ln1_post.w / cache[f"blocks.{l}.ln1_post.hook_scale"][rows, at]
         for l in range(model.n_layers)], 1,
    )  # fmt: skip


def _residual_parts(model, components, rows, at) -> torch.Tensor:
    """``[batch, component, d_model]`` every output at ``at`` as the final residual holds it
    (shortformer positions are not in it)."""
    parts = components[rows, at].clone()
    if model.shortformer:
        parts[:, 1] = 0.0
    return parts


def _unembedding(model) -> tuple[torch.Tensor, torch.Tensor]:
    """``W_U [d_model, vocab]`` and ``b_U [vocab]`` as they read the normalised residual.

    An unfolded final LayerNorm (shortformer) is folded in here, and the unembedding is
    centred: its outputs are centred as LayerNorm sees them, while a head's output split
    by source is not, and a centred reading gives both what the model computes.
    """
    m = model.hooked
    unembed, bias = m.W_U.detach(), m.b_U.detach()
    final = m.ln_final
    if hasattr(final, "w"):
        bias = bias + final.b.detach() @ unembed
        unembed = final.w.detach()[:, None] * unembed
    if model.shortformer:
        unembed = unembed - unembed.mean(0, keepdim=True)
    return unembed, bias


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


def readout_units(model, cache, components, pattern, values, at) -> Readout:
    """Every unit the unembedding reads at ``at``: heads by source token, other components,
    each divided by the final normalisation's scale (see ``core.prob_seeding``)."""
    m = model.hooked
    rows = torch.arange(len(at), device=model.device)
    scale = cache["ln_final.hook_scale"][rows, at, 0]  # [batch]
    moved = torch.einsum("blshe,lhem->blhsm", values, m.W_O.detach())
    gain = _post_gain(model, cache, rows, at)  # [batch, layer, d_model] or None
    if gain is not None:
        moved = moved * gain[:, :, None, None, :]
    heads = pattern[rows, :, :, at][..., None] * moved / scale[:, None, None, None, None]
    others = _residual_parts(model, components, rows, at) / scale[:, None, None]
    others[:, model.layout.head_mask()] = 0.0  # heads come split by source, above
    unembed, bias = _unembedding(model)
    final = _final_norm(model, cache["ln_final.hook_normalized"][rows, at], scale)
    return Readout(heads, others, unembed, bias, logit_cap(m.cfg), scale, final)
