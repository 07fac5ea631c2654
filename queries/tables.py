"""Query results as pandas data frames and networkx graphs, for notebooks.

Each result type's ``to_pandas()`` and ``to_networkx()`` call these. Route
nodes are written ``component@role`` as in the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headgraph.errors import QueryError
from headgraph.frames import records_frame

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from headgraph.queries.compare import Comparison
    from headgraph.queries.features import FeatureResult
    from headgraph.queries.paths import PathResult
    from headgraph.queries.redundancy import RedundancyResult


def frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def paths_frame(result: PathResult) -> pd.DataFrame:
    """One row per route, strongest first."""
    columns = ("rank", "score", "mean_score", "prompts", "share_of_prompts", "hops", "truncated",
               "route")  # fmt: skip
    rows = [
        {"rank": i + 1, "score": r.score, "mean_score": r.mean_score, "prompts": r.prompts,
         "share_of_prompts": r.share_of_prompts, "hops": len(r.hops), "truncated": r.truncated,
         "route": r.text}
        for i, r in enumerate(result.routes)
    ]  # fmt: skip
    return frame(rows, columns)


def paths_graph(result: PathResult) -> nx.DiGraph:
    """The union of the routes: ``component@role`` nodes; each hop an edge with its side,
    singular vectors, and the routes (ranks) and best score that use it."""
    import networkx as nx

    graph = nx.DiGraph(run=result.run, target=result.target)
    for rank, route in enumerate(result.routes, start=1):
        for hop in route.hops:
            down = f"{hop.downstream}@{hop.role}" if hop.side == "query" else hop.downstream
            a, b = f"{hop.upstream}@{hop.role}", down
            data = graph.get_edge_data(a, b) or {"routes": [], "score": 0.0}
            graph.add_edge(
                a,
                b,
                side=hop.side,
                singular_vectors=list(hop.singular_vectors),
                routes=[*data["routes"], rank],
                score=max(data["score"], route.score),
            )
    return graph


def features_frame(result: FeatureResult) -> pd.DataFrame:
    """One row per singular vector; ``writers`` as ``component:side`` names."""
    columns = ("sv", "head", "index", "sigma", "firings", "share_of_firings", "prompts",
               "mean_term", "writers")  # fmt: skip
    rows = [
        {"sv": f.name, **{k: getattr(f, k) for k in columns[1:-1]},
         "writers": [f"{w.component}:{w.side}" for w in f.writers]}
        for f in result.features
    ]  # fmt: skip
    return frame(rows, columns)


def features_graph(result: FeatureResult) -> nx.DiGraph:
    """Writers -> singular vectors -> the head: who writes each feature, on which side."""
    import networkx as nx

    graph = nx.DiGraph(run=result.run, head=result.head)
    for f in result.features:
        graph.add_node(f.name, kind="singular_vector", sigma=f.sigma, firings=f.firings)
        graph.add_edge(f.name, result.head, firings=f.firings)
        for w in f.writers:
            graph.add_edge(
                w.component, f.name, side=w.side, firings=w.firings, mean_weight=w.mean_weight
            )
    return graph


def redundancy_frame(result: RedundancyResult, table: str = "criticality") -> pd.DataFrame:
    """``criticality`` (one row per component), ``substitutes`` (one per group) or
    ``connectivity`` (node-disjoint routes per prompt)."""
    if table == "criticality":
        return records_frame(result.criticality, ("component", "critical_prompts", "share",
                                                     "present_prompts"))  # fmt: skip
    if table == "substitutes":
        return records_frame(result.substitutes, ("side", "singular_vector", "members",
                                                     "prompts_any", "prompts_all"))  # fmt: skip
    if table == "connectivity":
        rows = [{"prompt": p, "routes": n} for p, n in result.connectivity.per_prompt.items()]
        return frame(rows, ("prompt", "routes"))
    raise QueryError(f"table={table!r}: use criticality, substitutes or connectivity")


def comparison_frame(result: Comparison) -> pd.DataFrame:
    """Precision, recall and F1 over heads and over edges, one row each."""
    columns = ("over", "precision", "recall", "f1", "true_positives", "predicted", "reference")
    rows = [
        {"over": name, **{k: getattr(score, k) for k in columns[1:]}}
        for name, score in (("heads", result.heads), ("edges", result.edges))
    ]
    return frame(rows, columns)
