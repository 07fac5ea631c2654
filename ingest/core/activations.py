"""What the math needs from one forward pass, as plain tensors.

The model adapter (``ingest.model``) fills this record; everything downstream
of it is free of TransformerLens.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from headgraph.ingest.core.prob_seeding import Readout
from headgraph.ingest.core.rotary import Rotary
from headgraph.ingest.core.seeding import PredictionSplit
from headgraph.ingest.core.values import ValueWeights


@dataclass(frozen=True)
class Activations:
    """Activations of one batch of right-padded prompts.

    Each layer's attention input (what W_Q and W_K read) is

        x = (sum of the components' outputs) * ln_weight / scale + ln_bias  [+ positions]

    where ``ln_weight`` and ``ln_bias`` are usually folded into W_Q and W_K (None
    here), and positions are added after the normalisation only in shortformer
    models (``positions_after_norm``).

    Attributes:
        normalized: ``[batch, layer, pos, d_model]`` each layer's attention input ``x``.
        scale: ``[batch, layer, pos]`` each layer's normalisation scale.
        pattern: ``[batch, layer, head, dest, src]`` attention weights.
        components: ``[batch, pos, component, d_model]`` every component's output,
            on the axis of :class:`headgraph.ingest.core.components.ComponentLayout`
            (what the normalisation sees: centred for LayerNorm models).
        lengths: ``[batch]`` real prompt lengths (positions past them are padding).
        attn_scale: ``[layer]`` what each layer divides its scores ``a(d, s)`` by before
            the softmax (``sqrt(d_head)`` in most models).
        rotary: The rotary tables of a rotary model, else None.
        ln_weight, ln_bias: ``[layer, d_model]`` a normalisation's weight and bias
            that are not folded into the query and key weights, else None.
        query_vectors, key_vectors: ``[batch, layer, pos, head, d_head]`` the heads' query
            and key vectors as the model scores them (rotated in a rotary model; grouped keys
            repeated for each query head), else None (projections then start from
            ``normalized``).
        value_vectors: ``[batch, layer, pos, head, d_head]`` their value vectors
            ``x W_V + b_V`` (grouped ones repeated), else None (the stakes, which read
            them, are then refused).
        positions_after_norm: The positional embeddings reach the attention
            input after the normalisation (shortformer), not through the residual.
        prediction: Each prompt's answer logit split into components, when the
            forward pass was given answers (seeding from the prediction).
        readout: Every unit the unembedding reads at each prompt's last token, when
            asked for (probability-aware seeding).
        values: The model's value and output weights, for the value side (else None).
        head_gain: ``[batch, layer, pos, d_model]`` a frozen normalisation between a
            head's ``z W_O`` and the residual (Gemma 2's post-attention RMSNorm), else None.
    """

    normalized: Tensor
    scale: Tensor
    pattern: Tensor
    components: Tensor
    lengths: Tensor
    attn_scale: Tensor
    rotary: Rotary | None = None
    ln_weight: Tensor | None = None
    ln_bias: Tensor | None = None
    query_vectors: Tensor | None = None
    key_vectors: Tensor | None = None
    value_vectors: Tensor | None = None
    positions_after_norm: bool = False
    prediction: PredictionSplit | None = None
    readout: Readout | None = None
    values: ValueWeights | None = None
    head_gain: Tensor | None = None
