"""Which vocabulary tokens a singular vector reads: the paper's check of a "names" subspace.

A token's embedding, normalised as the first layer's attention reads it and
augmented with the homogeneous 1, is projected on a head's left (query side)
or right (key side) singular vector; the tokens with the largest projections,
of either sign, are what the direction responds to when that token is in the
residual stream. Deeper in the model the residual also holds what earlier
layers wrote, so this reads the direction through the embeddings only.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from headgraph.errors import InputError
from headgraph.ingest.core.signals import augment

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model


def candidates(model: Model, dtype: torch.dtype) -> Tensor:
    """``[vocab, d_model+1]`` the augmented embeddings of every token the tokenizer can
    decode (a model's embedding may be larger than a word-level tokenizer's vocabulary)."""
    vocab = model.token_embeddings.shape[0]
    if isinstance(model.tokenizer, Sized):
        vocab = min(vocab, len(model.tokenizer))
    return augment(model.token_embeddings[:vocab].to(dtype).cpu())


def top_tokens(
    model: Model, layer: int, head: int, index: int, *, side: str = "key", n: int = 10
) -> list[tuple[str, float]]:
    """The ``n`` tokens whose embeddings project most strongly on singular vector ``index``.

    Args:
        model: An :class:`headgraph.ingest.model.adapter.Model`.
        layer, head, index: The singular vector ``layer.head:index``.
        side: ``query`` (u_k) or ``key`` (v_k).
        n: How many tokens.

    Returns:
        ``(token text, projection)``, largest magnitude first.
    """
    if side not in ("query", "key"):
        raise InputError(f"side {side!r}: use query or key")
    vectors = model.qk.U if side == "query" else model.qk.V  # [layer, head, d_model+1, rank]
    direction = vectors[layer, head, :, index]  # [d_model+1]
    projection = candidates(model, torch.float64) @ direction  # [vocab]
    top = projection.abs().topk(min(n, len(projection))).indices.tolist()
    return [(model.tokenizer.decode([t]), float(projection[t])) for t in top]


STORED_TOKENS = 10  # tokens kept per singular vector and side at ingest


def all_top_tokens(model: Model, *, n: int = STORED_TOKENS) -> dict[str, Tensor]:
    """The top ``n`` tokens of every singular vector of every head, on both sides, batched.

    Only token ids the tokenizer can decode are candidates (a model's embedding
    may be larger than its tokenizer's vocabulary).

    Returns:
        ``{"query_ids", "query_values", "key_ids", "key_values"}``, each
        ``[layer, head, rank, n]``: ids and projections, largest magnitude first.
    """
    x = candidates(model, torch.float32)  # [vocab, d_model+1]
    vocab = len(x)
    out = {}
    for side, vectors in (("query", model.qk.U), ("key", model.qk.V)):
        vectors = vectors.to(torch.float32)  # [layer, head, d_model+1, rank]
        ids, values = [], []
        for layer in vectors:  # one layer at a time bounds the memory to [head, vocab, rank]
            projection = torch.einsum("vd,hdr->hrv", x, layer)  # [head, rank, vocab]
            top = projection.abs().topk(min(n, vocab), dim=-1).indices  # [head, rank, n]
            ids.append(top)
            values.append(projection.gather(-1, top))
        out[f"{side}_ids"] = torch.stack(ids)  # [layer, head, rank, n]
        out[f"{side}_values"] = torch.stack(values)
    return out
