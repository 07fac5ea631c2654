"""The bundled tiny-ioi model: the task's splits, the shipped checkpoint, its circuit."""

import pytest
import torch

from headgraph.ingest import tiny_ioi
from headgraph.ingest.causal.intervene import ablation_deltas
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.trace import pad_tokens, trace
from headgraph.ingest.jobs.trace_job import default_seeds
from headgraph.ingest.model import load_model


@pytest.fixture(scope="module")
def model():
    return load_model("tiny-ioi")


@pytest.fixture(scope="module")
def held_out():
    return tiny_ioi.prompts(300, held_out=True, seed=11)


def test_held_out_templates_and_pairs_never_appear_in_training():
    train = set(tiny_ioi.templates(2000, held_out=False, seed=0))
    held = set(tiny_ioi.templates(500, held_out=True, seed=0))
    assert not train & held
    for family_first, family_verb in tiny_ioi.HELD_OUT_FAMILIES:
        first, verb = tiny_ioi.FIRST[family_first], tiny_ioi.VERBS[family_verb]
        assert not [t for t in train if first in t and f" {verb} a " in t]
    pairs = set(tiny_ioi.name_pairs(held_out=False))
    assert not pairs & set(tiny_ioi.name_pairs(held_out=True))
    assert {(p.io_token, p.s_token) for p in tiny_ioi.prompts(200, held_out=True, seed=3)}


def test_the_shipped_checkpoint_solves_held_out_ioi(model, held_out):
    result = tiny_ioi.evaluate(model, held_out)
    assert result.accuracy >= 0.98
    assert result.logit_diff > 5
    card = tiny_ioi.card()
    assert card["held_out"]["accuracy"] >= 0.98
    assert tiny_ioi.CHECKPOINT.stat().st_size < 5 * 2**20


def test_the_card_seeds_fire_at_end(model, held_out):
    seeds = default_seeds(model)
    assert seeds and all(s.dest_role == "END" for s in seeds)
    fired = {
        f.prompt_id
        for b in trace(model, held_out, seeds=seeds)
        for f in b.firing_records()
        if f.traced and f.dest_role == "END"
    }
    assert len(fired) > len(held_out) // 2


def logit_diff(model, prompts, deltas=None) -> float:
    tokens, lengths = pad_tokens(prompts)
    rows = torch.arange(len(prompts))
    final = model.log_probs(tokens, deltas)[rows, lengths - 1]
    io = torch.tensor([p.io_token for p in prompts])
    s = torch.tensor([p.s_token for p in prompts])
    return float((final[rows, io] - final[rows, s]).mean())


def test_ablating_the_traced_edges_beats_random_singular_vectors(model, held_out):
    params = TraceParams.paper()  # the card's figure: the paper's trace, every edge ablated
    batch = next(
        trace(model, held_out, seeds=default_seeds(model), params=params, batch_size=len(held_out))
    )
    acts = model.run(*pad_tokens(held_out))
    qk = model.qk.to("cpu", torch.float32)
    base = logit_diff(model, held_out)
    traced = base - logit_diff(
        model, held_out, ablation_deltas(batch, acts.components, (qk.U, qk.V))
    )
    generator = torch.Generator().manual_seed(0)
    controls = [
        base
        - logit_diff(
            model,
            held_out,
            ablation_deltas(
                batch, acts.components, (qk.U, qk.V), control=True, generator=generator
            ),
        )
        for _ in range(3)
    ]
    control = sum(controls) / len(controls)
    assert traced > 2.0, (base, traced, controls)
    assert traced > 4 * abs(control), (base, traced, controls)
