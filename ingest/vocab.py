"""Which vocabulary tokens a singular vector reads: the paper's check of a "names" subspace.

A token's embedding, normalised as the first layer's attention reads it and
augmented with the homogeneous 1, is projected on a head's left (query side)
or right (key side) singular vector; the tokens with the largest projections,
of either sign, are what the direction responds to when that token is in the
residual stream. Deeper in the model the residual also holds what earlier
layers wrote, so this reads the direction through the embeddings only.
"""

from __future__ import annotations

import torch

from ingest.signals import augment


def top_tokens(
    model, layer: int, head: int, index: int, *, side: str = "key", n: int = 10
) -> list[tuple[str, float]]:
    """The ``n`` tokens whose embeddings project most strongly on singular vector ``index``.

    Args:
        model: An :class:`ingest.model.Model`.
        layer, head, index: The singular vector ``layer.head:index``.
        side: ``query`` (u_k) or ``key`` (v_k).
        n: How many tokens.

    Returns:
        ``(token text, projection)``, largest magnitude first.
    """
    if side not in ("query", "key"):
        raise ValueError(f"side {side!r}: use query or key")
    vectors = model.qk.U if side == "query" else model.qk.V  # [layer, head, d_model+1, rank]
    direction = vectors[layer, head, :, index]  # [d_model+1]
    x = augment(model.token_embeddings.to(torch.float64).cpu())  # [vocab, d_model+1]
    projection = x @ direction  # [vocab]
    top = projection.abs().topk(min(n, len(projection))).indices.tolist()
    return [(model.tokenizer.decode([t]), float(projection[t])) for t in top]
