"""Reading the prediction out of a forward pass: the answer's logit split into components
(part of the adapter: it names TransformerLens hooks and weights, imports nothing from it).
"""

from __future__ import annotations

import torch

from headgraph.ingest.core.seeding import PredictionSplit, split_prediction


def split_at_answers(model, cache, components, pattern, at, answers, wrong) -> PredictionSplit:
    """The logit difference at ``at`` split into components (see ``core.seeding``).

    Args:
        model: The :class:`~headgraph.ingest.model.adapter.Model`.
        cache: The forward pass's cache (with ``hook_v`` and ``ln_final``'s hooks).
        components: ``[batch, pos, component, d_model]``.
        pattern: ``[batch, layer, head, dest, src]``.
        at: ``[batch]`` the answer positions.
        answers, wrong: ``[batch]`` token ids (wrong: -1 for none).
    """
    m, cfg = model.hooked, model.hooked.cfg
    rows = torch.arange(len(at), device=model.device)
    answers = answers.to(model.device)
    wrong = (torch.full_like(answers, -1) if wrong is None else wrong).to(model.device)
    has_wrong = wrong >= 0
    W_U, b_U = m.W_U.detach(), m.b_U.detach()  # [d_model, vocab], [vocab]
    direction = W_U[:, answers].T - has_wrong[:, None] * W_U[:, wrong.clamp_min(0)].T
    bias = b_U[answers] - has_wrong * b_U[wrong.clamp_min(0)]
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
    answer_logit = logits[rows, answers]
    correct = torch.where(
        has_wrong, answer_logit > logits[rows, wrong.clamp_min(0)], logits.argmax(-1) == answers
    )
    return PredictionSplit(at, heads, shares, bias, correct)
