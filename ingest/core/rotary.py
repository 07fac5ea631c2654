"""Rotary positions (RoPE) and the rotated frame (METHOD.md section 10).

A rotary head rotates its query and key vectors by the position they sit at:
``q_d = R_d (W_Q^T x_d + b_Q)``, ``k_s = R_s (W_K^T x_s + b_K)``, where ``R_p``
turns each pair of the first ``rotary_dim`` coordinates by its own angle and
leaves the rest alone. The score ``q_d . k_s`` then depends on the offset
``s - d``. The augmented QK matrix of the head stays fixed: every input is
mapped into the frame where it applies,

    x^_d = (A^+)^T q_d        x^_s = (B^+)^T k_s          A = [W_Q; b_Q],  B = [W_K; b_K]

so that ``a(d, s) = x^_d^T Omega~ x^_s`` and ``x^_d . u_k = q_d . (A^+ u_k)``.
The map is linear in the input, so each upstream component's share is mapped
the same way; the rotated bias ``R_d b_Q`` depends on the position and stays
with the head's own bias node.

``R_p x = x * cos_p + flip(x) * sin_p`` on the rotated coordinates, where
``flip`` maps each pair ``(a, b)`` to ``(-b, a)``: pairs are the two halves of
the rotated block (GPT-NeoX, Llama) or adjacent coordinates (GPT-J). Since
``flip`` is antisymmetric and both members of a pair share an angle,
``R_p^T x = x * cos_p - flip(x) * sin_p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Rotary:
    """A model's rotary tables, layer by layer (layers may use different bases).

    Attributes:
        cos, sin: ``[layer, pos, rotary_dim]`` the angles' cosines and sines.
        adjacent: Pairs are adjacent coordinates (GPT-J) rather than the two
            halves of the rotated block (GPT-NeoX, Llama).
    """

    cos: Tensor
    sin: Tensor
    adjacent: bool = False

    @property
    def dim(self) -> int:
        """How many leading coordinates of a head vector rotate."""
        return self.cos.shape[-1]

    def to(self, dtype: torch.dtype) -> Rotary:
        return Rotary(self.cos.to(dtype), self.sin.to(dtype), self.adjacent)


def flip(x: Tensor, *, adjacent: bool) -> Tensor:
    """Map each rotated pair ``(a, b)`` to ``(-b, a)`` along the last axis."""
    if adjacent:
        pairs = x.unflatten(-1, (-1, 2))  # [..., rotary_dim/2, 2]
        return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor, *, adjacent: bool, inverse: bool = False) -> Tensor:
    """``R_p x`` (or ``R_p^T x``) on the last axis of head vectors.

    Args:
        x: ``[..., d_head]``.
        cos, sin: ``[..., rotary_dim]`` broadcastable to ``x``'s rotated block.
        adjacent: The pairing (see :class:`Rotary`).
        inverse: Rotate back (the transpose, an inverse since ``R_p`` is orthogonal).
    """
    n = cos.shape[-1]
    turned, kept = x[..., :n], x[..., n:]
    sign = -1.0 if inverse else 1.0
    turned = turned * cos + sign * flip(turned, adjacent=adjacent) * sin
    return torch.cat([turned, kept], dim=-1)
