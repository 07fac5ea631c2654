"""What the final norm restores when one seed head alone goes to its baseline
(``core.final_norm``; docs/core.md, "Relevance")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from headgraph.ingest.core.final_norm import FinalNorm
from headgraph.ingest.core.seeding import token_sets
from headgraph.ingest.core.trace import pad_tokens


def norm(x: torch.Tensor, *, centred: bool, eps: float) -> torch.Tensor:
    """The norm as torch computes it (LayerNorm, or RMSNorm), no weight."""
    if centred:
        return F.layer_norm(x, x.shape[-1:], eps=eps)
    return F.rms_norm(x, x.shape[-1:], eps=eps)


@pytest.mark.parametrize("centred", [True, False])
def test_kept_times_the_linear_loss_is_the_loss_through_the_norm(centred):
    torch.manual_seed(0)
    eps, n, d = 1e-5, 64, 16
    raw = torch.randn(n, d) * 3
    residual = raw - raw.mean(-1, keepdim=True) if centred else raw
    final = FinalNorm(residual, centred=centred, eps=eps)
    w = torch.randn(n, d)
    scale = (residual.pow(2).mean(-1) + eps).sqrt()
    reader = w / scale[:, None]
    delta = 0.3 * torch.randn(n, d)
    kept = final.kept(delta, reader, torch.arange(n))
    exact = ((norm(raw, centred=centred, eps=eps) - norm(raw - delta, centred=centred, eps=eps))
             * w).sum(-1)  # fmt: skip
    seen = delta - delta.mean(-1, keepdim=True) if centred else delta
    linear = (seen * reader).sum(-1)
    inside = (exact / linear > 0) & (exact / linear < 1)
    assert inside.sum() > n // 4  # the comparison is not empty
    torch.testing.assert_close(kept[inside] * linear[inside], exact[inside], rtol=1e-4, atol=1e-5)
    assert ((kept >= 0) & (kept <= 1)).all()


def test_an_output_along_the_residual_is_restored_whole_and_one_across_it_is_kept():
    x = torch.tensor([[3.0, -1.0, -2.0, 0.0]])  # centred
    final = FinalNorm(x, centred=True, eps=1e-6)
    reader = torch.tensor([[1.0, 0.0, -1.0, 0.0]])
    along = final.kept(0.5 * x, reader, torch.tensor([0]))
    across = torch.tensor([[0.0, 1e-3, 0.0, -1e-3]])  # orthogonal to x, read by the reader
    across = final.kept(across, reader + 1e3 * across, torch.tensor([0]))
    assert along.item() == pytest.approx(0.0, abs=1e-6)  # the norm gives it all back
    assert across.item() == pytest.approx(1.0, abs=1e-2)  # orthogonal to x: nothing back


@pytest.mark.slow
def test_a_name_movers_kept_part_is_its_direct_path_patch_on_tiny_ioi():
    """Independent of the trace: the name mover's output at END less the batch's mean there,
    removed from the final residual by a TransformerLens hook, costs ``kept`` times its
    linear share (clamped to [0, 1]); on tiny-ioi the four name movers keep well under half
    of it."""
    from headgraph.ingest import tiny_ioi
    from headgraph.ingest.model import load_model

    model = load_model("tiny-ioi")
    m = model.hooked
    prompts = tiny_ioi.prompts(32, held_out=True, seed=3)
    tokens, lengths = pad_tokens(prompts)
    answers = token_sets([p.answers for p in prompts])
    wrong = token_sets([p.wrongs for p in prompts])
    prediction = model.run(tokens, lengths, answers=answers, wrong=wrong).prediction
    assert prediction is not None and prediction.final is not None and prediction.reader is not None
    rows, end = torch.arange(len(prompts)), lengths - 1
    io, s = answers[:, 0], wrong[:, 0]
    with torch.no_grad():
        _, cache = m.run_with_cache(tokens)
    last = f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"

    def logit_diff(hooks) -> torch.Tensor:
        with torch.no_grad():
            logits = m.run_with_hooks(tokens, fwd_hooks=hooks)[rows, end]
        return logits[rows, io] - logits[rows, s]

    clean = logit_diff([])
    for head in range(m.cfg.n_heads):  # the name movers 1.0-1.3
        out = cache["blocks.1.attn.hook_z"][rows, end, head] @ m.W_O[1, head].detach()
        delta = out - out.mean(0)  # less the role mean at END

        def remove(act, hook, delta=delta):
            act[rows, end] -= delta
            return act

        lost = clean - logit_diff([(last, remove)])
        kept = prediction.final.kept(delta, prediction.reader, rows)
        linear = (delta * prediction.reader).sum(-1)
        ratio = (lost / linear).clamp(0, 1)
        assert ((ratio > 0) & (ratio < 1)).sum() >= 8  # not every prompt clamped
        torch.testing.assert_close(kept, ratio, rtol=1e-3, atol=1e-3)
        assert lost.sum() < 0.5 * linear.sum()  # the others' copies restore most of it
