import pytest
import torch

from headgraph.ingest.causal.intervene import ablation_deltas
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.trace import pad_tokens, trace
from tests.ingest.test_planted import MARK, planted_model, planted_prompts


@pytest.fixture(scope="module")
def planted():
    """The planted circuit, plus prompts without the marker (same roles).

    Mean ablation removes the signal's deviation from its mean over prompts; in
    the marked prompts alone the writer's output at MARK never varies.
    """
    model = planted_model()
    marked = planted_prompts()
    unmarked = [
        Prompt("u" + p.id, "", tuple(0 if t == MARK else t for t in p.tokens), p.roles)
        for p in marked
    ]
    prompts = marked + unmarked
    batch = next(trace(model, prompts, seeds=[Seed(1, 0, "END", "MARK")]))
    acts = model.run(*pad_tokens(prompts))
    qk = model.qk.to("cpu", torch.float32)
    return model, batch, acts, (qk.U, qk.V)


def writer_edges(batch, model):
    writer = model.layout.head_index(0, 0)
    return ((batch.edge_component == writer) & (batch.edge_side == 1)).nonzero().squeeze(-1)


def test_ablation_removes_the_centred_signal_direction_and_nothing_else(planted):
    model, batch, acts, vectors = planted
    rows = writer_edges(batch, model)
    assert len(rows) == 5
    deltas = ablation_deltas(batch, acts.components, vectors, rows=rows)
    writer = model.layout.head_index(0, 0)
    v0 = vectors[1][1, 0, :-1, 0]  # head 1.0's key-side singular vector 0
    v0 = v0 / v0.norm()
    touched = deltas.abs().sum(-1).nonzero()
    marks = {(b, p.roles["MARK"], writer) for b, p in enumerate(batch.prompts) if b < 5}
    assert {tuple(t) for t in touched.tolist()} == marks
    outputs = acts.components[:, :, writer]
    mean = torch.stack([outputs[b, p.roles["MARK"]] for b, p in enumerate(batch.prompts)]).mean(0)
    for b, p in enumerate(batch.prompts[:5]):
        before = outputs[b, p.roles["MARK"]]
        after = before + deltas[b, p.roles["MARK"], writer]
        assert float((after - mean) @ v0) == pytest.approx(0.0, abs=1e-4)
        # only the v0 direction changed
        change = after - before
        assert torch.allclose(change, (change @ v0) * v0, atol=1e-5)


def test_the_control_avoids_the_edges_singular_vectors(planted):
    model, batch, acts, vectors = planted
    rows = writer_edges(batch, model)
    generator = torch.Generator().manual_seed(0)
    deltas = ablation_deltas(
        batch, acts.components, vectors, rows=rows, control=True, generator=generator
    )
    v0 = vectors[1][1, 0, :-1, 0]
    assert deltas.abs().sum() > 0
    assert float((deltas @ v0).abs().max()) < 1e-4


def test_deltas_reach_the_model_output(planted):
    model, batch, acts, vectors = planted
    tokens, _ = pad_tokens(batch.prompts)
    deltas = ablation_deltas(batch, acts.components, vectors, rows=writer_edges(batch, model))
    assert not torch.allclose(model.log_probs(tokens, deltas), model.log_probs(tokens))
    torch.testing.assert_close(
        model.log_probs(tokens, torch.zeros_like(deltas)), model.log_probs(tokens)
    )
