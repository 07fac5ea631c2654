import pytest
import torch

from headgraph.ingest.core.batch_trace import SIDES
from headgraph.ingest.core.params import TraceParams
from headgraph.ingest.core.records import Prompt, Seed, parse_seeds
from headgraph.ingest.core.trace import trace
from tests.conftest import small_model

SEEDS = parse_seeds("2.*", "END:*", n_heads=4)
PAPER = TraceParams.paper()  # the paper's trace: these tests check its structure


def records(model, prompts, *, params=PAPER, **options):
    firings, edges = [], []
    for batch in trace(model, prompts, seeds=SEEDS, params=params, **options):
        firings += batch.firing_records()
        edges += batch.edge_records()
    return firings, edges


@pytest.fixture(scope="module")
def traced(model, prompts):
    return records(model, prompts, batch_size=5)


def test_same_inputs_give_the_same_records_bit_for_bit(prompts, traced):
    again = records(small_model(), prompts, batch_size=5)
    assert again == traced
    assert len(traced[1]) > 50  # not vacuous


def test_batching_and_padding_do_not_change_the_trace(model, prompts, traced):
    firings, edges = records(model, prompts, batch_size=len(prompts))

    def key(e):
        return (e.prompt_id, e.layer, e.head, e.dest, e.source, e.side, e.upstream.name)

    assert sorted(map(key, edges)) == sorted(map(key, traced[1]))
    weights = dict(zip(map(key, edges), (e.weight for e in edges), strict=True))
    for e in traced[1]:
        assert weights[key(e)] == pytest.approx(e.weight, rel=1e-4, abs=1e-5)
    assert len(firings) == len(traced[0])


def test_each_firing_is_traced_once_and_edges_are_unique(traced):
    firings, edges = traced
    keys = [(f.prompt_id, f.layer, f.head, f.dest, f.source) for f in firings]
    assert len(keys) == len(set(keys))
    edge_keys = [
        (e.prompt_id, e.layer, e.head, e.dest, e.source, e.side, e.upstream) for e in edges
    ]
    assert len(edge_keys) == len(set(edge_keys))


def test_traced_firings_are_exactly_the_seeds_and_what_traced_edges_need(traced):
    firings, edges = traced
    needed = {
        (e.prompt_id, e.upstream.layer, e.upstream.head, e.token)
        for e in edges
        if e.upstream.kind == "head"
    }
    for f in firings:
        is_seed = f.layer == 2 and f.dest_role == "END"
        is_needed = (f.prompt_id, f.layer, f.head, f.dest) in needed
        assert f.traced == (is_seed or is_needed), f
    assert any(f.traced and f.layer < 2 for f in firings)  # the recursion went somewhere
    traced_keys = {(f.prompt_id, f.layer, f.head, f.dest, f.source) for f in firings if f.traced}
    assert {(e.prompt_id, e.layer, e.head, e.dest, e.source) for e in edges} <= traced_keys


def test_edges_point_upstream_and_read_at_the_right_token(traced):
    _, edges = traced
    for e in edges:
        assert e.upstream.layer < e.layer or e.upstream.kind == "qk_bias"
        assert e.token == (e.dest if e.side == "query" else e.source)
        assert e.weight > 0 and e.singular_vectors and len(e.terms) == len(e.singular_vectors)


def test_a_stricter_attention_threshold_traces_fewer_firings(model, prompts, traced):
    strict, _ = records(model, prompts, params=TraceParams.paper(attention_threshold=0.9))
    assert 0 < len(strict) < len(traced[0])
    assert all(f.attention >= 0.9 for f in strict)


def test_the_seeds_name_their_firings_by_head_destination_and_source_role(model, prompts):
    from headgraph.ingest.core.signals import seed_mask

    roles = ("IO", "S1", "S2")
    seeds = parse_seeds("1.*", "END:*", n_heads=4) + tuple(
        seed for role in roles for seed in parse_seeds("2.*", f"END:{role}", n_heads=4)
    )
    firings = next(iter(trace(model, prompts, seeds=SEEDS, params=PAPER))).firings
    batch = firings.batch.tolist()
    named = [
        any(
            (layer, head, dest) == (s.layer, s.head, prompts[b].roles[s.dest_role])
            and (s.source_role is None or source == prompts[b].roles[s.source_role])
            for s in seeds
        )
        for b, layer, head, dest, source in zip(
            batch,
            firings.layer.tolist(),
            firings.head.tolist(),
            firings.dest.tolist(),
            firings.source.tolist(),
            strict=True,
        )  # fmt: skip
    ]
    assert seed_mask(firings, prompts[: max(batch) + 1], seeds).tolist() == named
    by_source = [n and layer == 2 for n, layer in zip(named, firings.layer.tolist(), strict=True)]
    assert any(by_source) and not all(named)  # both kinds of seed name some firings, not all


def test_bad_inputs_are_refused_before_any_work(model, prompts):
    with pytest.raises(ValueError, match="head 7.0 does not exist: the model has 3 layers"):
        next(trace(model, prompts, seeds=[Seed(7, 0, "END")]))
    with pytest.raises(ValueError, match="has no role 'XX'"):
        next(trace(model, prompts, seeds=[Seed(2, 0, "XX")]))
    with pytest.raises(ValueError, match="appears twice"):
        next(trace(model, [prompts[0], prompts[0]], seeds=SEEDS))
    long = Prompt("long", "", tuple([1] * 40), {"END": 39})
    with pytest.raises(ValueError, match="context is 32"):
        next(trace(model, [long], seeds=SEEDS))
    with pytest.raises(ValueError, match="role END is at token 9"):
        Prompt("short", "", (1, 2), {"END": 9})


def test_seed_parsing():
    assert parse_seeds("9.6, L9H9,a10.h0", "END:IO", n_heads=12) == (
        Seed(9, 6, "END", "IO"),
        Seed(9, 9, "END", "IO"),
        Seed(10, 0, "END", "IO"),
    )
    assert len(parse_seeds("3.*", "END:*", n_heads=12)) == 12
    for heads, roles, message in (
        ("9.x", "END:IO", "not a head name"),
        ("9.9", "END", "must be DEST:SOURCE"),
        ("", "END:IO", "no seed heads"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_seeds(heads, roles, n_heads=12)


def test_run_params_round_trip_through_the_json_recorded_on_a_run(prompts):
    from headgraph.ingest.core.params import RunParams
    from headgraph.ingest.core.records import parse_seeds

    seeds = parse_seeds("1.*", "END:IO", n_heads=4)
    recorded = RunParams.of(prompts, seeds, TraceParams(0.4, 0.9, 0.6), 8)
    text = recorded.to_json()
    assert RunParams.from_json(text) == recorded and RunParams.from_json(text).to_json() == text
    assert RunParams.of(prompts[:-1], seeds, TraceParams(), 8).prompts_sha256 != (
        recorded.prompts_sha256
    )
    with pytest.raises(ValueError, match="not a run's recorded parameters"):
        RunParams.from_json('{"seeds": []}')


def test_competitors_are_recorded_and_runs_recorded_before_read_back_with_four(prompts):
    import json

    from headgraph.ingest.core.params import RunParams

    seeds = parse_seeds("1.*", "END:IO", n_heads=4)
    recorded = RunParams.of(prompts, seeds, TraceParams(), 8)
    data = json.loads(recorded.to_json())
    assert data["competitors"] == 2 and data["weighting"] == "stakes"
    del data["competitors"]  # a run recorded before the option: it took up to four
    assert RunParams.from_json(json.dumps(data)).params.competitors == 4
    with pytest.raises(ValueError, match="competitors must be at least 1, got 0"):
        TraceParams(competitors=0)


def test_a_firing_inhibits_at_most_competitors_sources(model, prompts):
    def rivals(cap):  # the most competitors of any firing, and all inhibition edges
        most, count = 0, 0
        for batch in trace(model, prompts, seeds=SEEDS, params=TraceParams(competitors=cap)):
            inhibit = batch.edge_side == SIDES.index("inhibit")
            pairs = torch.unique(
                torch.stack([batch.edge_firing, batch.edge_token])[:, inhibit], dim=1
            )
            per = torch.bincount(pairs[0]) if pairs.shape[1] else torch.zeros(1, dtype=torch.long)
            most, count = max(most, int(per.max())), count + int(inhibit.sum())
        return most, count

    (one, one_edges), (four, four_edges) = rivals(1), rivals(4)
    assert one == 1 and four > 1  # the cap binds, and it is what limits them
    assert one_edges < four_edges


def test_mean_baseline_batches_hold_enough_prompts_and_a_resumed_run_batches_alike():
    from headgraph.ingest.core.params import MEAN_BATCH_MIN, batch_bounds

    mean = TraceParams()
    assert batch_bounds(33, 32, mean) == [(0, 33)]  # one prompt is its own mean
    assert batch_bounds(40, 32, mean) == [(0, 32), (32, 40)]
    assert batch_bounds(33, 32, PAPER) == [(0, 32), (32, 33)]
    for n in range(1, 80):
        bounds = batch_bounds(n, 16, mean)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(b - a >= min(n, MEAN_BATCH_MIN) for a, b in bounds)
        for k in range(len(bounds)):  # the rest of a run, resumed at batch k
            rest = batch_bounds(n - 16 * k, 16, mean)
            assert [(a + 16 * k, b + 16 * k) for a, b in rest] == bounds[k:]


def test_one_prompt_under_the_mean_baseline_is_refused_with_the_way_out(model, prompts):
    with pytest.raises(ValueError, match="one prompt is its own mean.*--baseline none"):
        next(trace(model, prompts[:1], seeds=SEEDS))
    with pytest.raises(ValueError, match="one prompt is its own mean"):
        next(trace(model, prompts, seeds=SEEDS, batch_size=1))
    assert next(trace(model, prompts[:1], seeds=SEEDS, params=PAPER)).edge_records()
