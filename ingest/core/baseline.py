"""Baseline-relative contributions: each output less a baseline output.

A contribution measured against a baseline says what a component writes *that
differs* from what it writes in the task's other prompts at the same role. A
constant input (IOI's END token, always " to"; a bias) then contributes nothing
and makes no edge. The baseline is the role-aligned mean over a batch's prompts
(tokens with no role: the mean over every real token), the same mean that the
causal checks ablate to (:mod:`headgraph.ingest.causal.intervene`); or each
prompt's counterfactual (IOI's ABC corruption: other names, the same tokens
elsewhere), token for token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from headgraph.errors import InputError
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
    return relative_to(components, means[role])


def relative_to(components: Tensor, reference: Tensor) -> Tensor:
    """``components - reference`` (both ``[batch, pos, component, d_model]``), exactly zero
    where they agree (a constant token), not a rounding residue."""
    relative = components - reference
    same = relative.norm(dim=-1) <= 1e-5 * components.norm(dim=-1)
    return relative.masked_fill(same.unsqueeze(-1), 0.0)


def check_counterfactuals(
    prompts: Sequence[Prompt], counterfactuals: Sequence[Prompt] | None, baseline: str
) -> None:
    """The counterfactual baseline's prompts: one per prompt, as many tokens as it.

    Raises:
        InputError: missing, or not aligned with the prompts, or given for another baseline.
    """
    if baseline != "counterfactual":
        if counterfactuals is not None:
            raise InputError(f"counterfactual prompts go with the counterfactual baseline, "
                             f"not {baseline!r}")  # fmt: skip
        return
    if counterfactuals is None or len(counterfactuals) != len(prompts):
        raise InputError(
            "the counterfactual baseline needs one counterfactual prompt per prompt (the ioi "
            "task's ABC corruption on the command line; counterfactuals= in Python)"
        )
    for p, c in zip(prompts, counterfactuals, strict=True):
        if len(p.tokens) != len(c.tokens):
            raise InputError(
                f"prompt {p.id!r} has {len(p.tokens)} tokens and its counterfactual "
                f"{len(c.tokens)}: a counterfactual is compared token for token"
            )
