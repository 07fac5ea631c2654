"""A planted circuit: weights set by hand so that the true edges are known.

Residual dimensions: tokens 0-7 one-hot in dims 0-7, positions one-hot in
dims 8-15, dim 16 is written by head 0.0, dim 17 by head 0.1.

- 0.0 attends each token to itself (through the positional dims) and writes
  dim 16, only at the MARK token (token id 1).
- 0.1 writes dim 17 at every token: a head that writes nothing head 1.0 reads.
- 1.0 reads token 7 (END) on the query side and dim 16 on the key side through
  a rank-1 QK matrix: at END it attends to MARK, through singular vector 0.

So tracing 1.0 (END -> MARK) must give 0.0 -> 1.0 on the key side at MARK via
singular vector 0, the END token's embedding on the query side, and no edge
from 0.1.
"""

import pytest
import torch

from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.records import Prompt, Seed
from headgraph.ingest.core.trace import trace
from headgraph.ingest.model import Architecture, build_hooked, build_model
from headgraph.ingest.model.tokenizer import WordTokenizer

ARCH = Architecture(n_layers=2, n_heads=2, d_model=32, d_head=8, d_vocab=8, n_ctx=8)
MARK, END = 1, 7
GAIN = 6.0


def planted_model(readout: bool = False, gain: float = GAIN):
    """The planted model; with ``readout``, 1.0 also copies dim 16 of what it attends to into
    dim 18, which the unembedding reads, so that the output depends on the planted edge.
    ``gain`` scales 1.0's query and key (lower: attention less saturated)."""
    tokenizer = WordTokenizer([f"t{i}" for i in range(8)])
    state = {
        k: torch.zeros_like(v) if v.is_floating_point() else v
        for k, v in build_hooked(ARCH).state_dict().items()
    }
    for name in state:
        if name.endswith(("ln1.w", "ln_final.w")):
            state[name] = torch.ones_like(state[name])
    state["embed.W_E"][torch.arange(8), torch.arange(8)] = 1.0
    state["pos_embed.W_pos"][torch.arange(8), 8 + torch.arange(8)] = 1.0
    state["unembed.W_U"] = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    attn0, attn1 = "blocks.0.attn", "blocks.1.attn"
    # 0.0: self-attention through positions; writes dim 16 from the MARK token.
    state[f"{attn0}.W_Q"][0, 8 + torch.arange(8), torch.arange(8)] = GAIN
    state[f"{attn0}.W_K"][0, 8 + torch.arange(8), torch.arange(8)] = GAIN
    state[f"{attn0}.W_V"][0, MARK, 0] = 1.0
    state[f"{attn0}.W_O"][0, 0, 16] = 4.0
    # 0.1: uniform attention; writes dim 17 from every token.
    state[f"{attn0}.W_V"][1, :8, 0] = 1.0
    state[f"{attn0}.W_O"][1, 0, 17] = 4.0
    # 1.0: END token (query) x dim 16 (key), rank 1.
    state[f"{attn1}.W_Q"][0, END, 0] = gain
    state[f"{attn1}.W_K"][0, 16, 0] = gain
    if readout:
        state[f"{attn1}.W_V"][0, 16, 0] = 1.0
        state[f"{attn1}.W_O"][0, 0, 18] = 4.0
    return build_model(ARCH, tokenizer=tokenizer, state_dict=state, name="planted")


def planted_prompts():
    fillers = (0, 2, 3, 4, 5, 6)  # neither MARK nor END
    prompts = []
    for mark in range(2, 7):
        tokens = [fillers[(mark + i) % len(fillers)] for i in range(7)] + [END]
        tokens[mark] = MARK
        prompts.append(Prompt(f"p{mark}", "", tuple(tokens), {"MARK": mark, "END": 7}))
    return prompts


@pytest.fixture(scope="module")
def traced():
    model = planted_model()
    seeds = [Seed(1, 0, "END", "MARK")]  # the paper's trace, whose edges were planted
    batches = list(trace(model, planted_prompts(), seeds=seeds, params=TraceParams.paper()))
    return (
        model,
        [f for b in batches for f in b.firing_records()],
        [e for b in batches for e in b.edge_records()],
    )


def test_the_reader_fires_from_end_to_mark_through_singular_vector_0(traced):
    _, firings, _ = traced
    seeds = [f for f in firings if (f.layer, f.head) == (1, 0) and f.traced]
    assert len(seeds) == 5
    for f in seeds:
        assert (f.dest_role, f.source_role) == ("END", "MARK")
        assert f.attention > 0.9
        assert f.singular_vectors == (0,)


def test_the_writer_is_the_key_side_edge_at_mark_via_singular_vector_0(traced):
    _, _, edges = traced
    into_reader = [e for e in edges if (e.layer, e.head) == (1, 0)]
    key = [e for e in into_reader if e.side == "key"]
    assert {(e.prompt_id, e.upstream.name, e.role) for e in key} == {
        (f"p{m}", "0.0", "MARK") for m in range(2, 7)
    }
    assert all(e.singular_vectors == (0,) and e.share > 0.7 for e in key)
    query = [e for e in into_reader if e.side == "query"]
    assert {e.upstream.name for e in query} == {"embed"}
    assert all(e.role == "END" for e in query)


def test_a_head_that_writes_nothing_read_gives_no_edge(traced):
    _, _, edges = traced
    assert not [e for e in edges if e.upstream.name == "0.1"]


def test_tracing_recurses_into_the_writer_at_mark(traced):
    _, firings, edges = traced
    writer = [f for f in firings if (f.layer, f.head) == (0, 0) and f.traced]
    assert {(f.prompt_id, f.dest_role, f.source_role) for f in writer} == {
        (f"p{m}", "MARK", "MARK") for m in range(2, 7)
    }
    # Layer-0 firings are explained by the embeddings alone.
    assert {e.upstream.kind for e in edges if e.layer == 0} <= {"embed", "pos_embed", "qk_bias"}


def test_raising_the_edge_share_to_1_keeps_every_positive_writer():
    model = planted_model()
    params = TraceParams.paper(edge_frac=1.0)
    edges = [
        e
        for b in trace(model, planted_prompts(), seeds=[Seed(1, 0, "END", "MARK")], params=params)
        for e in b.edge_records()
    ]
    assert all(e.weight > 0 for e in edges)
    assert not [e for e in edges if e.upstream.name == "0.1"]
