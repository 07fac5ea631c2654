"""What the math needs from one forward pass, as plain tensors.

The model adapter (``ingest.model``) fills this record; everything downstream
of it is free of TransformerLens.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Activations:
    """Activations of one batch of right-padded prompts.

    Attributes:
        normalized: ``[batch, layer, pos, d_model]`` each layer's attention input
            ``resid_pre / scale`` (``blocks.L.ln1.hook_normalized``).
        scale: ``[batch, layer, pos]`` each layer's LN scale.
        pattern: ``[batch, layer, head, dest, src]`` attention weights.
        components: ``[batch, pos, component, d_model]`` every component's output,
            on the axis of :class:`headgraph.ingest.core.components.ComponentLayout`.
        lengths: ``[batch]`` real prompt lengths (positions past them are padding).
    """

    normalized: Tensor
    scale: Tensor
    pattern: Tensor
    components: Tensor
    lengths: Tensor
