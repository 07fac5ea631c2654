"""Recursive tracing from seeds back to the embeddings (METHOD.md section 5).

Per batch of prompts: project the attention inputs on the singular vectors,
find every firing and its sparse set, then walk the layers from the top down.
A firing of layer l is traced when a seed names it or when a traced edge of a
later layer needs it: an upstream head kept on the query side at token d needs
that head's firings whose destination is d; on the key side at token s, those
whose destination is s. Each firing is traced at most once per prompt however
many routes reach it (the ``needed`` mask is the memo), and since edges only
point to earlier layers, one top-down pass finishes the recursion.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from headgraph.errors import InputError
from headgraph.ingest.core.activations import Activations
from headgraph.ingest.core.baseline import (
    check_counterfactuals,
    relative_to,
    relative_to_mean,
    upstream_sums,
)
from headgraph.ingest.core.batch_trace import SIDES, BatchTrace
from headgraph.ingest.core.components import ComponentLayout
from headgraph.ingest.core.contributions import read_tokens, select_edges
from headgraph.ingest.core.params import TraceParams, batch_bounds
from headgraph.ingest.core.prob_seeding import prob_prediction
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.relevance import read_seeds, seed_relevance, seeds_kept_alone
from headgraph.ingest.core.scratch import Workspace
from headgraph.ingest.core.seeding import linear_seeds, token_sets
from headgraph.ingest.core.sides import LayerFirings, read_side, value_reads
from headgraph.ingest.core.signals import find_firings, projections, seed_mask
from headgraph.ingest.core.stakes import layer_stakes
from headgraph.ingest.core.svd import QKDecomposition
from headgraph.ingest.core.values import ReaderTable

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model

__all__ = ["SIDES", "BatchTrace", "check_inputs", "pad_tokens", "trace", "trace_batch"]


def trace_batch(
    acts: Activations,
    qk: QKDecomposition,
    layout: ComponentLayout,
    prompts: Sequence[Prompt],
    seeds: Sequence[Seed],
    params: TraceParams,
    reference: Tensor | None = None,
    *,
    directions: bool = False,
    consume: bool = False,
    workspace: Workspace | None = None,
) -> BatchTrace:
    """Find the firings of one batch and trace them from the seeds.

    Args:
        acts: The batch's activations.
        qk: The model's decomposition, on the activations' device and dtype.
        layout: The model's component axis.
        prompts: The batch's prompts, row for row.
        seeds: Where tracing starts.
        params: Thresholds.
        reference: The counterfactual baseline: the components on the prompts'
            counterfactuals, ``[batch, pos, component, d_model]``.
        directions: Keep each edge's read direction (``BatchTrace.edge_direction``).
        consume: ``acts`` is not read after: its outputs may be overwritten by their
            baseline-relative values (saves memory as large as the outputs).
        workspace: Buffers to reuse (:func:`trace` keeps one for every batch).
    """
    proj_u, proj_v = projections(acts, qk)  # [batch, layer, head, pos, rank] each
    seeded = forced = None
    prediction = acts.prediction
    if params.seeding == "linear":
        if prediction is None:
            raise InputError("seeding from the prediction needs a forward pass given the answers")
        seeded = linear_seeds(prediction, head_columns=layout.head_mask(), frac=params.seed_frac)
    elif params.seeding == "prob":
        prediction, seeded = prob_prediction(acts, prompts, layout, params)
    if seeded is not None:
        forced = torch.zeros_like(acts.pattern, dtype=torch.bool)
        assert prediction is not None
        dest = prediction.dest[seeded.batch]
        forced[seeded.batch, seeded.layer, seeded.head, dest, seeded.source] = True
    firings = find_firings(
        acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=params, forced=forced
    )
    f_b, f_l, f_h, f_d = firings.batch, firings.layer, firings.head, firings.dest

    device = f_b.device
    n_batch, n_layers, n_heads, n_pos = acts.pattern.shape[:4]
    axis_layer = torch.tensor([c.layer for c in layout.components] + [-1], device=device)
    axis_head = torch.tensor(
        [c.head if c.kind == "head" else -1 for c in layout.components] + [-1], device=device
    )
    traced = seed_mask(firings, prompts, seeds)
    if forced is not None:
        traced |= forced[f_b, f_l, f_h, f_d, firings.source]
    needed = torch.zeros(n_batch, n_layers, n_heads, n_pos, dtype=torch.bool, device=device)
    fires = torch.zeros_like(needed)  # a head has firings at the token: its readers count
    fires[f_b, f_l, f_h, f_d] = True
    relevance = torch.zeros(needed.shape, dtype=acts.scale.dtype, device=device)
    firing_seed = seed_relevance(firings, traced, seeded, prediction, forced)
    workspace = workspace or Workspace()
    readers = (
        ReaderTable(
            n_layers,
            n_heads,
            n_pos,
            n_batch=n_batch,
            rows=workspace.reader_rows,
        )
        if "value" in params.sides
        else None
    )
    if readers is not None and seeded is not None and prediction is not None:
        read_seeds(readers, seeded, prediction)
    components = acts.components
    if params.baseline == "mean":
        components = relative_to_mean(prompts, components, in_place=consume)
    elif params.baseline == "counterfactual":
        assert reference is not None, "the counterfactual baseline needs the reference"
        components = relative_to(components, reference, in_place=consume)
    parts: list[tuple[Tensor, ...]] = []
    staked = readers is not None and params.baseline != "none" and params.weighting == "stakes"
    seed_kept = None  # a seed's value edges report what stays lost without it alone
    if staked:  # every layer's baseline-relative input, summed in one pass over the outputs
        inputs = upstream_sums(components, [layout.n_upstream(l) for l in range(n_layers)])
        positions = components[:, :, 1] if acts.positions_after_norm else None
        if seeded is not None and prediction is not None:
            columns = layout.head_columns(device)
            seed_kept = seeds_kept_alone(seeded, prediction, components, columns)

    for layer in reversed(range(n_layers)):
        active = (f_l == layer) & (traced | needed[f_b, f_l, f_h, f_d])
        traced |= active
        rows = active.nonzero().squeeze(-1)
        if rows.numel() == 0:
            continue
        layer_firings = LayerFirings.of(
            layer,
            rows,
            firings,
            proj_u,
            qk.S,
            attn_scale=float(acts.attn_scale[layer]),
            key_singular_vectors=None if acts.rotary is not None else qk.V[layer],
        )
        firing_relevance = (
            relevance[f_b[rows], layer, f_h[rows], f_d[rows]] * firings.attention[rows]
            + firing_seed[rows]
        )  # [n]
        n_up = layout.n_upstream(layer)
        read_by = value_reads(
            layer_firings,
            acts,
            None if readers is None else readers.take(layer, *layer_firings.at_dest),
        )
        stakes = None
        if read_by is not None and staked:
            stakes = layer_stakes(layer_firings, acts, qk, read_by, (inputs[layer], positions))
        readings = [
            (side, reading)
            for side in params.sides
            if (reading := read_side(side, layer_firings, acts, qk, read_by, stakes,
                                     frac=params.edge_frac, most=params.competitors)) is not None
        ]  # fmt: skip
        if not readings:
            continue
        # Every side at once: a token that several sides read is read once (memory-bound),
        # and each step below runs once a layer, not once a side.
        firing, token = (torch.cat([getattr(reading, name) for _, reading in readings])
                         for name in ("firing", "token"))  # fmt: skip
        side = torch.cat([torch.full_like(reading.firing, SIDES.index(name))
                          for name, reading in readings])  # fmt: skip
        b = layer_firings.batch[firing]
        reads = read_tokens(
            components, acts.scale[:, layer], [reading.direction for _, reading in readings],
            batch=b, token=token, n_upstream=n_up,
            ln_weight=None if acts.ln_weight is None else acts.ln_weight[layer],
            ln_bias=None if acts.ln_bias is None else acts.ln_bias[layer],
            positions_after_norm=acts.positions_after_norm, workspace=workspace,
        )  # fmt: skip
        upstream, bias = reads.upstream, reads.bias
        valued = side == SIDES.index("value")
        if acts.positions_after_norm:
            upstream[valued, 1] = 0.0  # shortformer positions reach queries and keys only
        if params.baseline != "none":
            bias = torch.zeros_like(bias)  # a constant: no part of a difference
        contributions = torch.cat([upstream, bias.unsqueeze(-1)], dim=-1)  # [m, n_up+1]
        candidates = contributions.clone()  # the heads' own biases: counted, never an edge
        candidates[valued | (side == SIDES.index("inhibit")), -1] = 0.0
        kept = select_edges(candidates, frac=params.edge_frac, rule=params.edge_rule)
        row, column = kept.nonzero(as_tuple=True)
        weight = contributions[row, column]
        signal = contributions.sum(dim=-1)[row]
        positive = candidates.clamp_min(0).sum(-1).clamp_min(1e-30)[row]
        seed = firing_seed[rows]
        handed = [reading.handed(firing_relevance, seed) for _, reading in readings]
        edge_relevance = handed_up = torch.cat(handed)[row] * weight / positive
        if seed_kept is not None and "value" in params.sides:  # upstream heads still get it all
            alone = seed_kept[layer_firings.batch, layer, layer_firings.head]  # [n]
            handed = [
                reading.handed(firing_relevance, seed, kept=alone) if name == "value" else given
                for (name, reading), given in zip(readings, handed, strict=True)
            ]
            edge_relevance = torch.cat(handed)[row] * weight / positive
        component = torch.where(column == n_up, len(layout), column)
        part = (rows[firing[row]], side[row], component, token[row], weight, weight / signal,
                edge_relevance)  # fmt: skip
        # what each side reads, through the norm's weight (its rows grouped by token)
        parts.append(part + (reads.direction[reads.row[row]],) if directions else part)
        # The recursion: an upstream head needs its firings that end at this token.
        into_head = (axis_head[component] >= 0).nonzero().squeeze(-1)  # [edges into heads]
        read_at, up = row[into_head], component[into_head]
        up_b, up_t, up_l, up_h = b[read_at], token[read_at], axis_layer[up], axis_head[up]
        needed[up_b, up_l, up_h, up_t] = True
        relevance.index_put_((up_b, up_l, up_h, up_t), handed_up[into_head], accumulate=True)
        if readers is not None:  # one reader per firing read, shared by its edges
            taken = fires[up_b, up_l, up_h, up_t].nonzero().squeeze(-1)  # where a firing takes it
            at_b, at_t = up_b[taken], up_t[taken]
            over = 1 / acts.scale[at_b, layer, at_t]  # a reader reads over the scale
            readers.add_rows(up_l[taken], at_b, up_h[taken], at_t, reads.row[read_at[taken]],
                             reads.direction, weight=over)  # fmt: skip

    columns = (
        [torch.cat(c) for c in zip(*parts, strict=True)]
        if parts
        else [
            torch.zeros(0, dtype=dtype, device=device)
            for dtype in (torch.long,) * 4 + (acts.scale.dtype,) * 3
        ]
        + ([acts.scale.new_zeros(0, acts.components.shape[-1])] if directions else [])
    )
    return BatchTrace(
        tuple(prompts), layout, firings, traced, *columns[:7], prediction=prediction,
        seeded=seeded, edge_direction=columns[7] if directions else None,
    )  # fmt: skip


def pad_tokens(prompts: Sequence[Prompt], *, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad a batch: ``tokens [batch, pos]`` and ``lengths [batch]``.

    Padding on the right leaves the real tokens' activations unchanged (causal
    attention, absolute positions).
    """
    lengths = torch.tensor([len(p.tokens) for p in prompts])
    tokens = torch.full((len(prompts), int(lengths.max())), pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt.tokens)] = torch.tensor(prompt.tokens)
    return tokens, lengths


def trace(
    model: Model,
    prompts: Sequence[Prompt],
    *,
    seeds: Sequence[Seed],
    params: TraceParams = TraceParams(),
    batch_size: int = 32,
    counterfactuals: Sequence[Prompt] | None = None,
) -> Iterator[BatchTrace]:
    """Trace prompts through a model, one batch at a time.

    Args:
        model: An :class:`headgraph.ingest.model.adapter.Model`.
        prompts: Prompts with the roles that the seeds name; ids unique.
        seeds: Where tracing starts.
        params: Thresholds.
        batch_size: Prompts per forward pass (bounds memory).
        counterfactuals: The counterfactual baseline's prompts, one per prompt with as
            many tokens (IOI: :func:`headgraph.ingest.tasks.ioi.corrupt`).

    Yields:
        One :class:`BatchTrace` per batch, in prompt order.

    Raises:
        ValueError: duplicate prompt ids, an unknown seed head, a missing role,
            a prompt longer than the model's context. Checked before any work.
    """
    check_inputs(model, prompts, seeds, batch_size, params, counterfactuals=counterfactuals)
    qk = model.qk.to(model.device, model.dtype)
    workspace = Workspace()
    for start, end in batch_bounds(len(prompts), batch_size, params):
        batch = prompts[start:end]
        tokens, lengths = pad_tokens(batch)
        reference = None
        if counterfactuals is not None:
            reference = model.run(*pad_tokens(counterfactuals[start:end])).components
        yield trace_batch(run_batch(model, batch, tokens, lengths, params), qk,
                          model.layout, batch, seeds, params, reference, consume=True,
                          workspace=workspace)  # fmt: skip


def run_batch(
    model: Model, batch: Sequence[Prompt], tokens: Tensor, lengths: Tensor, params: TraceParams
) -> Activations:
    """The batch's forward pass, given the answers when seeding from the prediction."""
    if params.seeding == "heads":
        return model.run(tokens, lengths)
    if params.seeding == "prob":
        return model.run(tokens, lengths, readout=True)
    answers, wrong = token_sets([p.answers for p in batch]), token_sets([p.wrongs for p in batch])
    return model.run(tokens, lengths, answers=answers, wrong=wrong)


def check_inputs(
    model: Model,
    prompts: Sequence[Prompt],
    seeds: Sequence[Seed],
    batch_size: int,
    params: TraceParams = TraceParams(),
    *,
    counterfactuals: Sequence[Prompt] | None = None,
) -> None:
    """Reject bad input before any forward pass (see :func:`trace`)."""
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if params.seeding != "heads":
        _check_answers(model, prompts, seeds, needed=not (params.top_k or params.top_p))
    elif not seeds:
        raise InputError("no seeds: tracing needs at least one seed head")
    for seed in seeds:
        model.layout.check_head(seed.layer, seed.head)
    seen: set[str] = set()
    for prompt in prompts:
        if prompt.id in seen:
            raise InputError(f"prompt id {prompt.id!r} appears twice: ids must be unique")
        seen.add(prompt.id)
        if len(prompt.tokens) > model.n_ctx:
            raise InputError(
                f"prompt {prompt.id!r} has {len(prompt.tokens)} tokens; the model's context "
                f"is {model.n_ctx}"
            )
        for seed in seeds:
            for role in filter(None, (seed.dest_role, seed.source_role)):
                if role not in prompt.roles:
                    raise InputError(
                        f"prompt {prompt.id!r} has no role {role!r}, which seed {seed.name} "
                        f"needs; its roles are {sorted(prompt.roles)}"
                    )
    if params.baseline == "mean" and (len(prompts) == 1 or batch_size == 1):
        raise InputError(
            "the mean baseline measures each output against its mean over a batch's prompts: "
            "one prompt is its own mean. Give more prompts (and a batch size above 1), or no "
            "baseline (--baseline none, TraceParams(baseline='none'))"
        )
    check_counterfactuals(prompts, counterfactuals, params.baseline)


def _check_answers(
    model: Model, prompts: Sequence[Prompt], seeds: Sequence[Seed], *, needed: bool
) -> None:
    """Seeding from the prediction: no seed heads, and every prompt has its answer (when
    ``needed``: the support is not the top-k or top-p of the prediction)."""
    if seeds:
        raise InputError("give seed heads or seed from the prediction, not both")
    vocab = model.hooked.cfg.d_vocab
    for prompt in prompts:
        if prompt.answer is None and needed:
            raise InputError(
                f"prompt {prompt.id!r} has no answer: seeding from the prediction needs "
                "each prompt's answer token (or give seed heads)"
            )
        tokens = [("answer", t) for t in prompt.answers] + [
            ("wrong answer", t) for t in prompt.wrongs
        ]
        for what, token in tokens:
            if not 0 <= token < vocab:
                raise InputError(
                    f"prompt {prompt.id!r}: {what} token {token} is outside the "
                    f"vocabulary (0..{vocab - 1})"
                )
