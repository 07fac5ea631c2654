"""A model's identity in a store: a hash of its shape and its processed weights.

Two models with the same fingerprint compute the same function in the same
parametrisation, whatever their names; a retrained model, or another folder
under the same name, gets another. No TransformerLens import: the adapter
passes the configuration's fields and the state dict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

# the configuration fields that fix a model's shape and function
SHAPE_FIELDS = (
    *("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "n_ctx", "act_fn"),
    *("normalization_type", "positional_embedding_type", "attn_only"),
)


def fingerprint(cfg: Any, state: Mapping[str, Tensor]) -> str:
    """SHA-256 (hex) of the shape fields of ``cfg`` and every tensor of ``state``, by name."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: str(getattr(cfg, k, None)) for k in SHAPE_FIELDS}).encode())
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        data = tensor.detach().cpu().reshape(-1).contiguous()  # 0-d tensors too
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
