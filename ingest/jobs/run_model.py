"""The model a stored run traced, loaded again and checked against the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headgraph.errors import ModelError
from headgraph.ingest.model import load_model
from headgraph.names import model_name, parse_head

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model


def load_run_model(store, model_key: str, spec: str | None = None, *, device: str = "cpu"):
    """Load ``spec`` (default: the name in the run's model key) and check it is the model the
    run traced.

    The check compares every head's singular values with the ones the store
    recorded (relative tolerance 1e-3, so the same weights on another device
    pass): another checkpoint under the same name fails it.

    Raises:
        ModelError: the model cannot be loaded, or it is not the run's model.
    """
    spec = spec or model_name(model_key)
    model = load_model(spec, device=device)
    stored = store.query(
        "MATCH (v:SingularVector) WHERE v.model = $model "
        "RETURN v.head_name AS head, v.`index` AS k, v.sigma AS sigma",
        {"model": model_key},
    )
    sigma = model.qk.S
    for row in stored:
        layer, head = parse_head(row["head"])
        if layer >= model.n_layers or head >= model.n_heads or row["k"] >= sigma.shape[-1]:
            raise ModelError(f"{spec} has no head {row['head']}: not the run's model")
        here = float(sigma[layer, head, row["k"]])
        if abs(here - row["sigma"]) > 1e-3 * max(abs(row["sigma"]), 1.0):
            raise ModelError(
                f"{spec} is not the model this run traced (sigma of "
                f"{row['head']}:{row['k']}: {here:.4g} here, {row['sigma']:.4g} in the store); "
                "pass --model"
            )
    return model


def model_feature_tokens(
    model: Model, features, *, side: str = "key", n: int = 5
) -> dict[str, list]:
    """``{"9.9:17": [(token, projection), ...]}``: the top ``n`` vocabulary tokens of each
    feature (a :class:`headgraph.queries.features.Feature`), read on ``side``."""
    from headgraph.ingest.core.vocab import top_tokens

    out = {}
    for f in features:
        layer, head = parse_head(f.head)
        out[f.name] = top_tokens(model, layer, head, f.index, side=side, n=n)
    return out
