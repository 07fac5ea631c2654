"""The queries on a real ingest of the bundled tiny-ioi model."""

import json
import re
from pathlib import Path

import pytest

from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.ingest.tiny_ioi.training import CHECKPOINT
from headgraph.queries.features import features
from headgraph.queries.paths import extended, paths
from headgraph.queries.redundancy import redundancy
from headgraph.queries.store import open_store

CARD = json.loads(CHECKPOINT.with_suffix(".json").read_text())
NAME_MOVERS = CARD["roles"]["name mover via IO+1"]
S_INHIBITION = CARD["roles"]["S-inhibition"][:2]  # the heads that attend END -> S2 most


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    model = load_model("tiny-ioi")
    store = open_store(str(tmp_path_factory.mktemp("tiny")))
    prompts = task_prompts(model, 96, seed=3)
    ingest(model, prompts, store=store, run="tiny", seeds=default_seeds(model), batch_size=32)
    yield store
    store.close()


@pytest.mark.parametrize("mover", NAME_MOVERS)
def test_the_strongest_route_into_each_name_mover_passes_its_s_inhibition_head(store, mover):
    top = paths(store, to=mover, top=3).routes[0]
    via = [(h.upstream, h.role, h.side) for h in top.hops]
    assert any(head in S_INHIBITION and role == "END" for head, role, _ in via), top.text
    assert top.hops[-1].downstream == f"{mover}@END"
    assert top.prompts >= 10


def test_name_movers_are_fed_redundantly(store):
    result = redundancy(store, to=NAME_MOVERS[0], role="END")
    assert result.connectivity.prompts > 0
    assert result.connectivity.median >= 2  # several disjoint routes, as in GPT-2's IOI circuit
    sides = {g.side for g in result.substitutes}
    assert sides  # layer-0 heads substitute for one another


def test_s_inhibition_feature_is_read_by_the_name_movers(store):
    result = features(store, head=S_INHIBITION[0], top=1)
    main = result.features[0]
    assert main.share_of_firings > 0.5
    assert {w.component for w in main.writers} & {"embed", "pos_embed"}


def test_the_python_example_in_docs_queries_runs(store, capsys):
    doc = (Path(__file__).parents[2] / "docs" / "queries.md").read_text()
    example = re.search(r"```python\n(.*?)```", doc, flags=re.S).group(1)
    exec(example.replace("./headgraph-db", str(store.path)), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 5 and "-> 1.0@END" in printed[0]


def every_route_score(cone, source: str, max_hops: int, product: bool) -> list[float]:
    """Every route's score into the cone's target from ``source``, by enumeration."""
    from headgraph.queries.cone import Cone

    assert isinstance(cone, Cone)
    scores = []

    def walk(node: int, per_prompt: dict | None, hops: int) -> None:
        for edge in cone.edges_into(node):
            here = extended(per_prompt, cone.shares(edge), product)
            if not here:
                continue
            up = cone.nodes[int(cone.edge_up[edge])]
            if up.component == source:
                scores.append(sum(here.values()) / cone.n_prompts)
            elif hops < max_hops:
                walk(int(cone.edge_up[edge]), here, hops + 1)

    for target in cone.targets:
        walk(target, None, 1)
    return sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("head", "source", "max_hops", "score"),
    [
        ("1.0", "embed", 3, "product"),
        ("1.2", "pos_embed", 4, "product"),
        ("2.3", "0.1", 3, "product"),
        ("1.2", "pos_embed", 2, "min"),
    ],
)
def test_the_search_returns_the_strongest_routes_of_all(store, head, source, max_hops, score):
    """The best-first search's bounds never hide a stronger route: its top routes' scores
    are the top of every route's, enumerated."""
    from headgraph.queries.cone import load_cone
    from headgraph.queries.selection import resolve_run

    cone = load_cone(store, resolve_run(store, "tiny"), head)
    expected = every_route_score(cone, source, max_hops, score == "product")[:10]
    for index in (True, False):
        found = paths(store, to=head, from_=source, max_hops=max_hops, score=score, index=index)
        assert [round(r.score, 12) for r in found.routes] == [round(s, 12) for s in expected]
