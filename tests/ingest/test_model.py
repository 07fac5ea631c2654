import pytest
import torch

from headgraph.ingest.core.trace import pad_tokens
from headgraph.ingest.model import ModelError, load_model
from tests.conftest import small_hooked, small_model


def test_weight_processing_leaves_log_probs_unchanged(prompts):
    tokens, _ = pad_tokens(prompts[:4])
    raw, processed = small_hooked(seed=5), small_model(seed=5)
    assert raw.cfg.normalization_type == "LN"
    assert processed.hooked.cfg.normalization_type == "LNPre"
    torch.testing.assert_close(
        processed.log_probs(tokens), raw(tokens).log_softmax(-1), rtol=1e-4, atol=1e-4
    )


def test_components_sum_to_each_layers_residual(model, prompts):
    tokens, lengths = pad_tokens(prompts[:5])
    acts = model.run(tokens, lengths)
    resid = model.residuals(tokens)  # [batch, layer, pos, d_model]
    for layer in range(model.n_layers):
        upstream = acts.components[:, :, : model.layout.n_upstream(layer)].sum(dim=2)
        torch.testing.assert_close(upstream, resid[:, layer], rtol=1e-4, atol=1e-4)
        # ...and the attention input is that residual, centred, over the LN scale.
        centred = upstream - upstream.mean(-1, keepdim=True)
        torch.testing.assert_close(
            acts.normalized[:, layer], centred / acts.scale[:, layer, :, None], rtol=1e-4, atol=1e-4
        )


def test_activation_shapes_follow_the_config(model, prompts):
    tokens, lengths = pad_tokens(prompts[:3])
    acts = model.run(tokens, lengths)
    b, p = tokens.shape
    L, H, d = model.n_layers, model.n_heads, model.d_model
    assert acts.normalized.shape == (b, L, p, d)
    assert acts.scale.shape == (b, L, p)
    assert acts.pattern.shape == (b, L, H, p, p)
    assert acts.components.shape == (b, p, len(model.layout), d)
    columns = model.layout.head_columns()  # [layer, head]: the heads' places on that axis
    assert columns.shape == (L, H)
    names = [model.layout.components[c].name for c in columns.flatten().tolist()]
    assert names == [f"{l}.{h}" for l in range(L) for h in range(H)]


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown preset 'huge'.*gpt2-small"):
        load_model("random:huge")
