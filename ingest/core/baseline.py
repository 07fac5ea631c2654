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
    for r, name in enumerate(names):
        rows = [b for b, p in enumerate(prompts) if name in p.roles]
        at = [prompts[b].roles[name] for b in rows]
        role[rows, at] = r
        for b, t in zip(rows, at, strict=True):  # a token at a time: no copy of them all
            means[r] += components[b, t]
        means[r] /= len(rows)
    for b, prompt in enumerate(prompts):  # a prompt at a time: no copy of every real token
        means[-1] += components[b, : len(prompt.tokens)].sum(dim=0)
    means[-1] /= sum(len(p.tokens) for p in prompts)
    return role, means


def relative_to_mean(
    prompts: Sequence[Prompt], components: Tensor, *, in_place: bool = False
) -> Tensor:
    """``[batch, pos, component, d_model]``: each output less its role-aligned mean.

    ``in_place``: overwrite ``components`` (a caller that needs them no more saves a copy
    as large as the batch's outputs).
    """
    role, means = role_means(prompts, components)
    norms = means.norm(dim=-1)  # [role, component]
    out = components if in_place and components.is_contiguous() else _like(components)
    with torch.inference_mode(out.is_inference()):  # a forward pass's outputs, in place
        for b, roles in enumerate(role.tolist()):  # a prompt at a time: no batch-sized
            for t, r in enumerate(roles):  # temporaries, and no copy of the means
                torch.sub(components[b, t], means[r], out=out[b, t])
            _zero_agreeing(out[b], means, norms, row=role[b])
    return out


def relative_to(components: Tensor, reference: Tensor, *, in_place: bool = False) -> Tensor:
    """``components - reference`` (both ``[batch, pos, component, d_model]``), exactly zero
    where they agree (a constant token), not a rounding residue. ``in_place``: as for
    :func:`relative_to_mean`."""
    out = components if in_place and components.is_contiguous() else _like(components)
    with torch.inference_mode(out.is_inference()):
        row = torch.arange(components.shape[1], device=components.device)  # token for token
        for b in range(len(components)):
            torch.sub(components[b], reference[b], out=out[b])
            _zero_agreeing(out[b], reference[b], reference[b].norm(dim=-1), row=row)
    return out


def upstream_sums(components: Tensor, n_upstream: Sequence[int]) -> Tensor:
    """``[layer, batch, pos, d_model]`` each layer's upstream outputs summed, every layer from
    one pass over the component axis (a running sum over its prefixes).

    Args:
        components: ``[batch, pos, component, d_model]``.
        n_upstream: Each layer's upstream components (a prefix of the axis), nondecreasing.
    """
    out = components.new_empty(len(n_upstream), *components.shape[:2], components.shape[-1])
    running, start = components.new_zeros(out.shape[1:]), 0
    for layer, stop in enumerate(n_upstream):
        running += components[:, :, start:stop].sum(2)
        out[layer], start = running, stop
    return out


def relative_input(
    summed: Tensor,
    *,
    scale: Tensor,
    ln_weight: Tensor | None = None,
    positions: Tensor | None = None,
) -> Tensor:
    """``[batch, pos, d_model]`` a layer's input less its baseline, as the layer's heads read
    it: the baseline-relative outputs upstream of it, summed, through the norm's scale and
    weight (positions added after the norm, in a shortformer model, as they are).

    Args:
        summed: ``[batch, pos, d_model]`` the baseline-relative outputs upstream of the
            layer, summed (:func:`upstream_sums`).
        scale: ``[batch, pos]`` the layer's normalisation scale.
        ln_weight: ``[d_model]`` its unfolded weight, if any.
        positions: ``[batch, pos, d_model]`` the baseline-relative positional embeddings
            where they are added after the norm, else None.
    """
    if positions is not None:
        summed = summed - positions
    if ln_weight is not None:
        summed = summed * ln_weight
    summed = summed / scale[:, :, None]
    return summed + positions if positions is not None else summed


def _like(components: Tensor) -> Tensor:
    """New memory shaped as ``components``, contiguous (whatever its strides)."""
    return components.new_empty(components.shape)


def _zero_agreeing(out: Tensor, reference: Tensor, reference_norm: Tensor, *, row: Tensor) -> None:
    """Zero one prompt's ``out = x - reference`` where ``x`` and its reference agree to 1e-5
    of ``x``'s norm: a constant input then differs by exactly nothing.

    Only where ``|out| <= 2e-5 |reference|`` can they agree (``|x| <= |reference| + |out|``),
    so ``x``'s norm is taken there alone, from ``out + reference``.

    Args:
        out: ``[pos, component, d_model]`` the difference, overwritten (contiguous).
        reference: ``[row, component, d_model]`` the references (a role's mean, a token's
            counterfactual).
        reference_norm: ``[row, component]`` their norms.
        row: ``[pos]`` the reference row each token was measured against.
    """
    near = out.norm(dim=-1) <= 2e-5 * reference_norm[row]  # [pos, component]
    if not near.any():
        return
    n_components, d_model = out.shape[1:]
    flat = out.view(-1, d_model)  # a row per (pos, component): whole rows gathered, fast
    which = near.flatten().nonzero().squeeze(-1)  # [near]
    pos, component = which // n_components, which % n_components
    diff = flat.index_select(0, which)  # [near, d_model]
    x = diff + reference.reshape(-1, d_model).index_select(0, row[pos] * n_components + component)
    agree = diff.norm(dim=-1) <= 1e-5 * x.norm(dim=-1)
    flat.index_fill_(0, which[agree], 0.0)


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
