"""Baseline-relative contributions: each output less its mean at the same token role.

A contribution measured against a baseline says what a component writes *that
differs* from what it writes in the task's other prompts at the same role. A
constant input (IOI's END token, always " to"; a bias) then contributes nothing
and makes no edge. The baseline is the role-aligned mean over a batch's prompts
(tokens with no role: the mean over every real token), the same mean that the
causal checks ablate to (:mod:`headgraph.ingest.causal.intervene`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from headgraph.ingest.core.records import Prompt


def role_means(prompts: Sequence[Prompt], components: Tensor) -> tuple[Tensor, Tensor]:
    """Mean outputs over the prompts, aligned by role.

    Returns:
        ``role [batch, pos]`` (an index; the last one for tokens with no role) and
        ``means [role, component, d_model]``: each role's mean over the prompts,
        and last the mean over every real token.
    """
    n_batch, n_pos = components.shape[:2]
    names = sorted({r for p in prompts for r in p.roles})
    device = components.device
    role = torch.full((n_batch, n_pos), len(names), dtype=torch.long, device=device)
    means = components.new_zeros(len(names) + 1, *components.shape[2:])
    real = torch.zeros(n_batch, n_pos, dtype=torch.bool, device=device)
    for b, prompt in enumerate(prompts):
        real[b, : len(prompt.tokens)] = True
    for r, name in enumerate(names):
        rows = [b for b, p in enumerate(prompts) if name in p.roles]
        at = torch.tensor([prompts[b].roles[name] for b in rows], device=device)
        rows = torch.tensor(rows, dtype=torch.long, device=device)
        role[rows, at] = r
        means[r] = components[rows, at].mean(dim=0)
    means[-1] = components[real].mean(dim=0)
    return role, means


def relative_to_mean(prompts: Sequence[Prompt], components: Tensor) -> Tensor:
    """``[batch, pos, component, d_model]``: each output less its role-aligned mean."""
    role, means = role_means(prompts, components)
    relative = components - means[role]
    # an output equal to its mean (a constant token) is exactly zero, not a rounding residue
    same = relative.norm(dim=-1) <= 1e-5 * components.norm(dim=-1)
    return relative.masked_fill(same.unsqueeze(-1), 0.0)
