"""What the index keeps for every head, read back, equals what is computed from the edges,
for every head of a real run, on both backends: the redundancy (and the logits'; filters
still read the cone) and the features (on each side)."""

import pytest

from headgraph.queries.features import features
from headgraph.queries.inbound import write_index
from headgraph.queries.redundancy import redundancy

HEADS = [f"{layer}.{head}" for layer in range(3) for head in range(4)] + ["logits"]


@pytest.fixture(scope="module")
def store(linear_tiny_store):
    return linear_tiny_store  # seeded from the prediction: the logits too


def from_the_cones(store):
    """Each head's redundancy with the kept measures removed (as for an older run)."""
    store.query("MATCH (r:RedundancyIndex) WHERE r.run = 'tiny' DELETE r")
    try:
        return [redundancy(store, to=head, run="tiny") for head in HEADS]
    finally:
        write_index(store, "tiny")


def test_the_kept_measures_equal_those_of_each_cone(store):
    kept = [redundancy(store, to=head, run="tiny") for head in HEADS]
    assert all(r.connectivity.prompts for r in kept)  # every head fires with edges in
    assert any(r.substitutes for r in kept)
    assert kept == from_the_cones(store)


def test_a_filter_reads_the_cone(store):
    whole = redundancy(store, to="2.1", run="tiny")
    prompt = next(iter(whole.connectivity.per_prompt))
    one = redundancy(store, to="2.1", run="tiny", prompt=prompt)
    assert one.connectivity.per_prompt == {prompt: whole.connectivity.per_prompt[prompt]}
    by_side = [redundancy(store, to="2.1", run="tiny", side=s) for s in ("query", "key")]
    assert all(r.connectivity.maximum <= whole.connectivity.maximum for r in by_side)


def test_the_kept_features_equal_those_of_the_edges(store):
    kept_heads = store.query("MATCH (u:FeatureIndex) WHERE u.run = 'tiny' RETURN u.head AS head")
    assert sorted(r["head"] for r in kept_heads) == sorted(HEADS[:-1])
    for side in ("any", "query", "key", "inhibit"):
        for head in HEADS[:-1]:
            for top in (3, 100):  # the kept lines are parsed as far as top asks
                ask = {"head": head, "run": "tiny", "side": side, "top": top}
                assert features(store, **ask) == features(store, **ask, index=False)
    assert sum(len(features(store, head=h, run="tiny").features) for h in HEADS[:-1]) > 20
