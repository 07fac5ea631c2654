"""Every supported model family, on a small random TransformerLens model of that architecture.

The terms of the decomposition plus the bias node must sum to TransformerLens's
own scores at every pair (float64), the contributions to each firing's signal,
and the standard processing must leave the model's function unchanged.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from headgraph.errors import ModelError
from headgraph.ingest.core.contributions import read_tokens, signal_directions
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.sides import LayerFirings, value_reads
from headgraph.ingest.core.signals import find_firings, projections
from headgraph.ingest.core.stakes import layer_stakes
from headgraph.ingest.core.trace import pad_tokens, trace
from headgraph.ingest.model import Model, build_hooked
from headgraph.ingest.model.families import check_supported
from headgraph.ingest.model.loading import PRESETS
from headgraph.ingest.tasks.ioi import ioi_prompts, word_tokenizer

FAMILIES = ("pythia", "gptj", "llama", "gemma2", "attn-only")


def randomised(hooked, seed: int) -> dict[str, torch.Tensor]:
    """Unprocessed weights with every bias, gain and grouped key/value bias randomised."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in hooked.state_dict().items():
        leaf = name.rsplit(".", 1)[-1].lstrip("_")
        if value.is_floating_point() and leaf == "w":
            value = 1.0 + 0.3 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
        elif value.is_floating_point() and leaf.startswith("b"):
            value = 0.5 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
        state[name] = value
    return state


def family_hooked(family: str, *, dtype=torch.float64):
    arch = PRESETS[family]
    arch = dataclasses.replace(arch, options=(*arch.options, ("dtype", dtype)))
    raw = build_hooked(arch, seed=1)
    return build_hooked(arch, seed=1, state_dict=randomised(raw, 1))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    hooked = family_hooked(request.param)
    tokenizer = word_tokenizer()
    prompts = ioi_prompts(6, tokenizer=tokenizer, seed=2)
    tokens, lengths = pad_tokens(prompts)
    with torch.no_grad():
        before = hooked(tokens).log_softmax(-1)
    model = Model.from_hooked(hooked, tokenizer=tokenizer, name=f"random:{request.param}")
    return request.param, hooked, model, prompts, tokens, lengths, before


def test_processing_keeps_the_models_function(family):
    name, hooked, model, _, tokens, _, before = family
    assert model.hooked is not hooked  # processed on a copy
    unembed_mean = model.hooked.W_U.detach().mean(-1).abs().max()
    if name == "gemma2":  # capped logits: centring would change them
        assert unembed_mean > 1e-3
    else:  # TransformerLens writes -1 for "no cap": the unembedding is centred
        assert unembed_mean < 1e-6
    with torch.no_grad():
        after = model.hooked(tokens).log_softmax(-1)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-4)  # fp32 rotary tables


def test_terms_sum_to_transformerlens_scores_at_every_pair(family):
    name, _, model, _, tokens, lengths, _ = family
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", torch.float64)
    proj_u, proj_v = projections(acts, qk)  # [batch, layer, head, pos, rank]
    terms = torch.einsum("blhdr,lhr,blhsr->blhds", proj_u, qk.S, proj_v)
    scores = model.attention_scores(tokens)  # TransformerLens's own q . k
    causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril()
    error = (terms - scores)[..., causal].abs().max() / scores[..., causal].abs().max()
    assert error < 1e-6, f"{name}: relative error {float(error):.1e}"
    assert scores[..., causal].abs().max() > 1.0  # the check is not vacuous


def test_projections_read_from_the_query_and_key_vectors_equal_those_of_the_inputs(family):
    """``(x~ A) . (A^+ u_k) = x~ . u_k``: the forward pass's own (rotated, grouped) query and
    key vectors give the projections that the augmented inputs give (shortformer included)."""
    name, _, model, _, tokens, lengths, _ = family
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", torch.float64)
    from_vectors = projections(acts, qk)
    from_inputs = projections(dataclasses.replace(acts, query_vectors=None, key_vectors=None), qk)
    for fast, slow in zip(from_vectors, from_inputs, strict=True):
        error = (fast - slow).abs().max() / slow.abs().max()
        assert error < 1e-10, f"{name}: relative error {float(error):.1e}"


def test_contributions_and_bias_node_sum_to_every_signal(family):
    name, _, model, _, tokens, lengths, _ = family
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", torch.float64)
    proj_u, proj_v = projections(acts, qk)
    f = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=TraceParams())
    checked = 0
    for layer in range(model.n_layers):
        rows = (f.layer == layer).nonzero().squeeze(-1)
        b, h, d, s = f.batch[rows], f.head[rows], f.dest[rows], f.source[rows]
        eps = torch.where(proj_u[b, layer, h, d] < 0, -1.0, 1.0).double()
        weights = eps * qk.S[layer, h].sqrt() * f.selected[rows]
        sides = (
            (qk.U, qk.query_factor, qk.query_readout, d, proj_u[b, layer, h, d]),
            (qk.V, qk.key_factor, qk.key_readout, s, proj_v[b, layer, h, s]),
        )
        for vectors, factor, readout, token, projected in sides:
            rotated = None
            if acts.rotary is not None:
                rotated = (factor[layer], readout[layer], acts.rotary.to(torch.float64), layer)
            direction = signal_directions(
                weights, vectors[layer], head=h, token=token, rotated=rotated
            )
            reads = read_tokens(
                acts.components, acts.scale[:, layer], [direction], batch=b, token=token,
                n_upstream=model.layout.n_upstream(layer),
                ln_weight=None if acts.ln_weight is None else acts.ln_weight[layer],
                ln_bias=None if acts.ln_bias is None else acts.ln_bias[layer],
                positions_after_norm=acts.positions_after_norm,
            )  # fmt: skip
            upstream, bias = reads.upstream, reads.bias
            signal = (weights * projected).sum(-1)
            torch.testing.assert_close(upstream.sum(-1) + bias, signal, rtol=1e-9, atol=1e-9)
            checked += len(rows)
    assert checked > 20, f"{name}: too few firings to check ({checked})"


def test_the_stakes_read_what_each_head_outputs_along_its_readers(family):
    """What a firing's readers read now, ``sum_t A(d,t) v_t . W_O R``, is the head's own
    output ``z(d)`` along ``W_O R`` (TransformerLens's ``hook_z``): the values are the
    model's, with no positions in a shortformer model's value input."""
    name, _, model, _, tokens, lengths, _ = family
    acts = model.run(tokens, lengths)
    qk = model.qk.to("cpu", torch.float64)
    proj_u, proj_v = projections(acts, qk)
    firings = find_firings(acts.pattern, proj_u, proj_v, qk.S, acts.lengths, params=TraceParams())
    z = model.per_layer(tokens, "attn.hook_z")  # [batch, layer, pos, head, d_head]
    layer = model.n_layers - 1
    rows = (firings.layer == layer).nonzero().squeeze(-1)
    scale = float(acts.attn_scale[layer])
    f = LayerFirings.of(layer, rows, firings, proj_u, qk.S, attn_scale=scale)
    readers = torch.randn(len(rows), model.d_model, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)  # fmt: skip
    read_by = value_reads(f, acts, (readers, torch.ones(len(rows), dtype=torch.bool)))
    zero = torch.zeros_like(acts.normalized[:, layer])  # no baseline: nothing moves
    stakes = layer_stakes(f, acts, qk, read_by, (zero, zero if acts.positions_after_norm else None))
    expected = (z[f.batch, layer, f.dest, f.head] * read_by.through).sum(-1)
    assert len(rows) > 0, name
    torch.testing.assert_close(stakes.out, expected, rtol=1e-9, atol=1e-9)


def test_a_trace_reaches_upstream_heads(family):
    name, _, model, prompts, *_ = family
    seeds = [s for s in _last_layer_seeds(model)]
    traced = list(trace(model, prompts, seeds=seeds, params=TraceParams(attention_threshold=0.3)))
    edges = [e for t in traced for e in t.edge_records()]
    assert any(e.upstream.kind == "head" for e in edges), name


def _last_layer_seeds(model):
    from headgraph.ingest.core.records import Seed

    return [Seed(model.n_layers - 1, h, "END", None) for h in range(model.n_heads)]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("positional_embedding_type", "alibi", "alibi positions"),
        ("use_qk_norm", True, "qk-norm"),
        ("post_embedding_ln", True, "BLOOM"),
    ],
)
def test_an_unsupported_architecture_is_refused_by_name(field, value, named):
    cfg = dataclasses.replace(family_hooked("llama").cfg, **{field: value})
    with pytest.raises(ModelError, match=named) as error:
        check_supported(cfg, "m")
    assert "Supported: GPT-2" in str(error.value)


def test_the_prediction_splits_exactly_into_components_and_heads_by_source(family):
    name, _, model, prompts, tokens, lengths, _ = family
    answers = torch.tensor([p.tokens[p.roles["IO"]] for p in prompts])
    wrong = torch.tensor([p.tokens[p.roles["S1"]] for p in prompts])
    acts = model.run(tokens, lengths, answers=answers, wrong=wrong)
    split = acts.prediction
    heads = model.layout.head_index(0, 0) + torch.arange(model.n_heads)
    for layer in range(model.n_layers):
        columns = [model.layout.head_index(layer, h) for h in range(model.n_heads)]
        torch.testing.assert_close(split.heads[:, layer].sum(-1), split.components[:, columns])
    rows = torch.arange(len(prompts))
    with torch.no_grad():
        logits = model.hooked(tokens)[rows, lengths - 1]
    if name != "gemma2":  # soft-capped logits: the split is of the logit before the cap
        expected = logits[rows, answers] - logits[rows, wrong]
        torch.testing.assert_close(split.total + split.bias, expected, rtol=1e-6, atol=1e-6)
    assert split.correct.tolist() == (logits[rows, answers] > logits[rows, wrong]).tolist()
    assert heads.numel() and split.heads.abs().max() > 0


def test_verify_refuses_shortformer_models_rather_than_ablate_the_wrong_span():
    from headgraph.errors import InputError
    from headgraph.ingest.causal.verify import verify_edges
    from headgraph.names import EdgeKey

    model = Model.from_hooked(family_hooked("attn-only"), tokenizer=word_tokenizer())
    prompts = ioi_prompts(2, tokenizer=word_tokenizer(), seed=2)
    edge = EdgeKey("0.0", "1.0", "query")  # rotary families: tested on tiny-ioi-rope
    with pytest.raises(InputError, match="not supported by verify yet"):
        verify_edges(model, prompts, [edge], seeds=_last_layer_seeds(model))


def test_the_units_the_unembedding_reads_give_the_models_logits(family):
    name, _, model, _, tokens, lengths, _ = family
    readout = model.run(tokens, lengths, readout=True).readout
    residual = readout.heads.sum((1, 2, 3)) + readout.others.sum(1)  # heads split by source
    rows = torch.arange(len(tokens))
    with torch.no_grad():
        expected = model.hooked(tokens)[rows, lengths - 1]
    torch.testing.assert_close(readout.logits(residual), expected, rtol=1e-6, atol=1e-6)
