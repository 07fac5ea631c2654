"""Shared fixtures: small models built here, with randomised biases and LN weights."""

from __future__ import annotations

import pytest
import torch

from headgraph.ingest.core.signals import augment, project
from headgraph.ingest.core.trace import pad_tokens
from headgraph.ingest.model import Architecture, Model, build_hooked, build_model
from headgraph.ingest.tasks.ioi import ioi_prompts, word_tokenizer

# Small enough for fast tests; MLPs present; weights large enough that heads fire.
SMALL = Architecture(
    n_layers=3, n_heads=4, d_model=32, d_head=8, d_vocab=160, n_ctx=32, d_mlp=64, init_range=0.5
)


def randomised_state_dict(hooked, seed: int) -> dict[str, torch.Tensor]:
    """The model's unprocessed weights with every bias and LN parameter randomised.

    Default initialisation sets biases to 0 and LN weights to 1, which would let
    bugs in folding and bias handling go unseen.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in hooked.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if value.is_floating_point() and leaf == "w":  # LayerNorm gains
            value = 1.0 + 0.3 * torch.randn(value.shape, generator=generator)
        elif value.is_floating_point() and leaf.startswith("b"):  # every bias, LN shifts too
            value = 0.5 * torch.randn(value.shape, generator=generator)
        state[name] = value
    return state


def small_hooked(*, seed: int = 0):
    """The small architecture, unprocessed, with randomised biases and LN weights."""
    raw = build_hooked(SMALL, seed=seed)
    return build_hooked(SMALL, seed=seed, state_dict=randomised_state_dict(raw, seed))


def small_model(*, seed: int = 0) -> Model:
    return build_model(
        SMALL,
        tokenizer=word_tokenizer(),
        seed=seed,
        state_dict=randomised_state_dict(build_hooked(SMALL, seed=seed), seed),
    )


@pytest.fixture(scope="session")
def tokenizer():
    return word_tokenizer()


@pytest.fixture(scope="session")
def model() -> Model:
    return small_model()


@pytest.fixture(scope="session")
def prompts(tokenizer):
    return ioi_prompts(12, tokenizer=tokenizer, seed=3)


@pytest.fixture(scope="session")
def projected(model, prompts):
    """``(acts, qk, proj_u, proj_v)`` of the shared prompts, in float32."""
    acts = model.run(*pad_tokens(prompts))
    qk = model.qk.to("cpu", torch.float32)
    x_tilde = augment(acts.normalized)
    return acts, qk, project(x_tilde, qk.U), project(x_tilde, qk.V)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of 2 CPUs (sharded ingest), for one test module."""
    ray = pytest.importorskip("ray", reason="sharded ingest needs ray (pip install -e '.[test]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
