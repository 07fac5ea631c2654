# pyright: reportAttributeAccessIssue=false, reportCallIssue=false, reportArgumentType=false
# (pandas' stubs type column arithmetic too loosely for these checks to hold)
"""A target head's backward cone: every per-prompt edge a route into the head can use.

One read of the run's ``SIGNAL`` relationships into firings below the target
(and into the target's own firings), turned into a graph whose nodes are
*a component at a token*, named by the token's role: ``0.3@S2``. Within a
prompt a role names one token, so these nodes are exact per prompt, and the
same names line up across prompts. Tokens without a role are named by
position (``#7``).

A node is a *site* (``~`` in its key) where the component wrote without
firing there: an embedding, an MLP, a bias, or a head that did not fire at
that token. Sites are where the traced signal enters; a node that is a head
firing has its own incoming edges. Per prompt and edge only the strongest
copy is kept (a head firing from one token to several sources is one node).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from headgraph.names import EDGE_SIDES, Component, Head
from headgraph.queries.selection import RunRef, check_prompt
from headgraph.queries.sparse_sets import rank_singular_vectors
from headgraph.queries.store import GraphStore

EDGES = (
    "MATCH (a:{source})-[s:SIGNAL]->(f:Firing) "
    "WHERE f.run = $run{where} "
    "RETURN f.prompt AS prompt, s.upstream AS up, s.token AS token, s.side AS side, "
    "s.share AS share, s.weight AS weight, coalesce(s.relevance, 0.0) AS relevance, "
    "f.head_name AS down, f.dest AS dest, "
    "f.source AS source, f.dest_role AS dest_role, f.source_role AS source_role, "
    "{up_role} AS up_role"
)
PREDICTS = (  # a run seeded from the prediction: each seed head at the answer position
    "MATCH (a:{source})-[p:PREDICTS]->(r:Prediction) WHERE r.run = $run{where} "
    "RETURN r.prompt AS prompt, p.upstream AS up, r.dest AS token, 'logit' AS side, "
    "p.share AS share, p.weight AS weight, p.share AS relevance, 'logits' AS down, "
    "r.dest AS dest, "
    "r.dest AS source, NULL AS up_role"
)
LOGITS = "logits"
LOGITS_ORDER = 1e6  # layer_order of the logits: above any layer (and finite, for JSON)
FIRINGS = (  # the sparse sets, read apart: lists are slow to read, and firings are few
    "MATCH (f:Firing) WHERE f.run = $run{where} "
    "RETURN f.prompt AS prompt, f.head_name AS head, f.dest AS dest, f.source AS source, "
    "f.svs AS svs"
)
BELOW = " AND (f.layer < $layer OR f.head_name = $head)"  # a head's firings and all below it
COLUMNS = ("prompt", "up", "token", "side", "share", "weight", "relevance", "down", "dest")
COLUMNS += ("source", "dest_role", "source_role", "up_role")
FIRING_COLUMNS = ("prompt", "head", "dest", "source", "svs")
SIDES = (*EDGE_SIDES, "logit")  # logit: a seed head into the logits


def is_constant(component: str) -> bool:
    """Biases write the same vector whatever the input: no information enters there."""
    return component.startswith("attn_bias") or component.endswith(":qk_bias")


def layer_order(component: str) -> float:
    """A key that sorts every edge's upstream before its downstream (embeddings first)."""
    if component in ("embed", "pos_embed"):
        return -1.0
    c = Component.parse(component)
    if c.kind == "logits":  # the unembedding reads the last residual, above every layer
        return LOGITS_ORDER
    if c.kind == "qk_bias":  # the head's own bias comes before the head
        return c.layer - 0.5
    if c.kind in ("mlp", "attn_bias"):  # after the layer's heads
        return c.layer + 0.5
    return float(c.layer)


@dataclass(frozen=True)
class Node:
    """A component at a token (by role). ``site``: it wrote there without firing."""

    component: str
    role: str
    site: bool

    @property
    def name(self) -> str:
        return f"{self.component}@{self.role}"

    @property
    def key(self) -> str:
        """The name, marked ``~`` for a site: ``7.1@END``, ``~embed@IO``."""
        return ("~" if self.site else "") + self.name

    @classmethod
    def parse(cls, key: str) -> Node:
        """The node a :attr:`key` names."""
        component, _, role = key.removeprefix("~").rpartition("@")
        return cls(component, role, key.startswith("~"))


@dataclass(frozen=True)
class Cone:
    """The edges into one head's firings and everything upstream of them.

    Attributes:
        run: The run read.
        target: The head, ``L.H`` (None: the whole run, and no targets).
        prompt_ids: Prompt ids, by prompt index.
        n_prompts: The denominator of prompt shares: the run's prompts (1 with a prompt filter).
        nodes: Every node, by node id.
        targets: Node ids of the target's firings (after the role filter).
        edge_up, edge_down, edge_side: Per edge id (``side`` an index into :data:`SIDES`).
        rows: One row per (edge, prompt), sorted by edge then prompt: ``edge``,
            ``prompt`` (index), ``share``, ``weight`` (of the strongest copy),
            ``relevance`` (summed over the copies) and the target firing's ``dest``
            and ``source`` tokens.
        sparse_sets: ``(prompt id, head, dest, source)`` -> the firing's S.
    """

    run: RunRef
    target: str | None
    prompt_ids: list[str]
    n_prompts: int
    nodes: list[Node]
    targets: frozenset[int]
    edge_up: np.ndarray
    edge_down: np.ndarray
    edge_side: np.ndarray
    rows: pd.DataFrame
    sparse_sets: dict[tuple[str, str, int, int], list[int]]

    @cached_property
    def bounds(self) -> np.ndarray:
        """``[edge + 1]`` offsets of each edge's rows in ``rows``."""
        return np.searchsorted(self.rows["edge"].to_numpy(), np.arange(len(self.edge_up) + 1))

    @cached_property
    def _by_down(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.edge_down, kind="stable")
        return order, np.searchsorted(self.edge_down[order], np.arange(len(self.nodes) + 1))

    def edges_into(self, node: int) -> list[int]:
        """Ids of the edges into a node, strongest first: by :attr:`totals`, then by
        upstream :attr:`Node.key` and side (the route index keeps them so)."""
        order, bounds = self._by_down
        edges, up = order[bounds[node] : bounds[node + 1]].tolist(), self.edge_up
        key = {e: (-self.totals[e], self.nodes[up[e]].key, self.edge_side[e]) for e in edges}
        return sorted(edges, key=key.__getitem__)

    @cached_property
    def totals(self) -> np.ndarray:
        """``[edge]`` its shares summed over its prompts: a bound on the score of any route
        through it (shares are at most 1)."""
        shares = self.rows["share"].to_numpy(dtype=float)  # every edge has a row
        return np.add.reduceat(shares, self.bounds[:-1]) if len(shares) else shares

    def total(self, edge: int) -> float:
        """The edge's :attr:`totals`."""
        return float(self.totals[edge])

    def node_prompts(self, node: int) -> set[int]:
        """The prompts (indices) in which some edge enters the node."""
        prompts, bounds = self.rows["prompt"].to_numpy(), self.bounds
        return {
            p for e in self.edges_into(node) for p in prompts[bounds[e] : bounds[e + 1]].tolist()
        }

    def shares(self, edge: int) -> dict[int, float]:
        """Prompt index -> the edge's share in that prompt (where it occurs)."""
        a, b = self.bounds[edge], self.bounds[edge + 1]
        prompts = self.rows["prompt"].to_numpy()[a:b].tolist()
        return dict(zip(prompts, self.rows["share"].to_numpy()[a:b].tolist(), strict=True))

    def singular_vectors(self, edge: int, prompts) -> tuple[int, ...]:
        """The singular vectors that carried the edge's target firings over ``prompts``
        (see :func:`rank_singular_vectors`)."""
        a, b = self.bounds[edge], self.bounds[edge + 1]
        head = self.nodes[int(self.edge_down[edge])].component
        if head == LOGITS:  # the unembedding reads no singular vectors
            return ()
        wanted = set(prompts)
        columns = (self.rows[c].to_numpy()[a:b].tolist() for c in ("prompt", "dest", "source"))
        return rank_singular_vectors(
            self.sparse_sets[(self.prompt_ids[p], head, dest, source)]
            for p, dest, source in zip(*columns, strict=True)
            if p in wanted
        )

    def reach(self, source: str):
        """The fewest hops from any node of ``source`` to each node (forward, in the cone),
        as a function of the node id (unreachable: infinity)."""
        out_edges: dict[int, list[int]] = {}
        for up, down in zip(self.edge_up.tolist(), self.edge_down.tolist(), strict=True):
            out_edges.setdefault(up, []).append(down)
        start = [i for i, n in enumerate(self.nodes) if n.component == source]
        hops = dict.fromkeys(start, 0)
        queue = deque(start)
        while queue:
            node = queue.popleft()
            for down in out_edges.get(node, ()):
                if down not in hops:
                    hops[down] = hops[node] + 1
                    queue.append(down)
        far = float("inf")
        return lambda node: hops.get(node, far)


def load_cone(
    store: GraphStore,
    run: RunRef,
    target: str | None,
    *,
    role: str | None = None,
    prompt: str | None = None,
) -> Cone:
    """Read a head's cone from the store (one query per source node type).

    Args:
        store: The store.
        run: The run (see :func:`headgraph.queries.selection.resolve_run`).
        target: The head, ``L.H`` (checked); None for the whole run.
        role: Keep only the target's firings whose destination has this role.
        prompt: Keep only this prompt.

    Raises:
        QueryError: ``prompt`` is not one of the run's.
    """
    params, where = {"run": run.key}, ""
    if target is not None and target != LOGITS:
        params |= {"layer": Head.parse(target).layer, "head": target}
        where = BELOW
    if prompt is not None:
        where, params["prompt"] = where + " AND f.prompt = $prompt", prompt
    frames = edge_frames(store, where, params)
    if target in (LOGITS, None):  # routes into the logits, or the whole run
        frames += prediction_edges(store, run, prompt)
    df = pd.concat(frames, ignore_index=True)
    if role is not None:
        df = df[(df["down"] != target) | (df["dest_role"] == role)]
    firings = store.frame(FIRINGS.format(where=where), params, columns=FIRING_COLUMNS)
    one = 1 if prompt is not None else None
    cone = build_cone(df, firings, run=run, target=target, n_prompts=one)
    if prompt is not None and not len(cone.prompt_ids):
        check_prompt(store, run.key, prompt)
    return cone


def build_cone(
    df: pd.DataFrame,
    firings: pd.DataFrame,
    *,
    run: RunRef,
    target: str | None,
    n_prompts: int | None = None,
) -> Cone:
    """A :class:`Cone` from the rows of :data:`EDGES` (and :data:`PREDICTS`) with a
    ``site`` column, and the firings' sparse sets (:data:`FIRINGS`)."""
    query = (df["side"] == "query").to_numpy()
    n = len(df)
    # Nodes as integer codes: (component, role or position, site), over up and down ends.
    comp_ids, comps = pd.factorize(pd.concat([df["up"], df["down"]], ignore_index=True))
    # where the upstream component writes: the firing's destination (query side), its
    # source (key, value), or its competitor (inhibit: the role the upstream end has)
    up_roles = df["dest_role"].where(query, df["source_role"])
    up_roles = up_roles.where(df["side"] != "inhibit", df["up_role"])
    role_ids, roles = pd.factorize(pd.concat([up_roles, df["dest_role"]], ignore_index=True))
    tokens = np.concatenate([df["token"].to_numpy(), df["dest"].to_numpy()]).astype(np.int64)
    names = len(roles) + (int(tokens.max()) + 1 if n else 0)  # a role, or "#position"
    role_code = np.where(role_ids >= 0, role_ids, len(roles) + tokens)
    site = np.concatenate([df["site"].to_numpy(dtype=bool), np.zeros(n, dtype=bool)])
    node_code = (comp_ids.astype(np.int64) * names + role_code) * 2 + site
    node_ids, node_codes = pd.factorize(node_code)
    comps, roles = [str(c) for c in comps], [str(r) for r in roles]
    nodes = []
    for code in np.asarray(node_codes).tolist():
        component, rc = divmod(code // 2, names)
        label = roles[rc] if rc < len(roles) else f"#{rc - len(roles)}"
        nodes.append(Node(comps[component], label, bool(code % 2)))
    up_id, down_id = node_ids[:n], node_ids[n:]
    side = pd.Categorical(df["side"], categories=SIDES).codes.astype(np.int64)
    n_sides = len(SIDES)
    edge_code = (up_id.astype(np.int64) * len(nodes) + down_id) * n_sides + side
    edge_id, codes = pd.factorize(edge_code, sort=True)
    prompt_index, prompt_ids = pd.factorize(df["prompt"], sort=True)
    share = np.clip(df["share"].to_numpy(dtype=float), 0.0, 1.0)
    # by edge, prompt, strongest first; ties by weight and firing, whatever order the rows
    # came in. One sort of an integer key where no edge has two copies in a prompt (the
    # usual case), else all the keys.
    pair = edge_id.astype(np.int64) * max(len(prompt_ids), 1) + prompt_index
    order = np.argsort(pair, kind="stable")
    ranked = pair[order]
    if (ranked[1:] == ranked[:-1]).any():
        tie_keys = (df["source"].to_numpy(), df["dest"].to_numpy(), -df["weight"].to_numpy(float))
        order = np.lexsort((*tie_keys, -share, prompt_index, edge_id))
    starts = _first_of_runs(edge_id[order], prompt_index[order])
    keep = order[starts]
    relevance = df["relevance"].fillna(0.0).to_numpy(dtype=float)[order]
    rows = pd.DataFrame(
        {
            "edge": edge_id[keep],
            "prompt": prompt_index[keep],
            "share": share[keep],
            "weight": df["weight"].to_numpy(dtype=float)[keep],
            # every copy's relevance: the edge's in that prompt, whichever firings carried it
            "relevance": np.add.reduceat(relevance, starts) if n else np.zeros(0),
            "dest": df["dest"].to_numpy()[keep],
            "source": df["source"].to_numpy()[keep],
        }
    )
    sparse_sets = {
        (prompt, head, dest, source): svs.tolist() if hasattr(svs, "tolist") else list(svs)
        for prompt, head, dest, source, svs in zip(
            *(firings[c].tolist() for c in FIRING_COLUMNS), strict=True
        )
    }
    codes = np.asarray(codes, dtype=np.int64)
    targets = frozenset(i for i, n in enumerate(nodes) if n.component == target and not n.site)
    return Cone(
        run=run,
        target=target,
        prompt_ids=list(prompt_ids),
        n_prompts=n_prompts or max(run.prompts, 1),
        nodes=nodes,
        targets=targets,
        edge_up=codes // n_sides // len(nodes) if len(nodes) else codes,
        edge_down=codes // n_sides % len(nodes) if len(nodes) else codes,
        edge_side=codes % n_sides,
        rows=rows,
        sparse_sets=sparse_sets,
    )


def edge_frames(store: GraphStore, where: str, params: dict) -> list[pd.DataFrame]:
    """The :data:`EDGES` rows of both upstream node types, with a ``site`` column."""
    return [
        store.frame(cypher, params, columns=COLUMNS).assign(site=source == "Site")
        for source, cypher in edge_queries(where)
    ]


def edge_queries(where: str) -> list[tuple[str, str]]:
    """``(source label, Cypher)``: the cone's reads of the edges into firings, one per kind
    of upstream node, with ``where`` added to the firing's filter (e.g. :data:`BELOW`)."""
    return [
        (source, EDGES.format(source=source, where=where, up_role=up_role))
        for source, up_role in (("Firing", "a.dest_role"), ("Site", "a.role"))
    ]


def _first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """Positions where any of the sorted ``keys`` changes (the first row of each run)."""
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    changed = np.zeros(len(keys[0]), dtype=bool)
    changed[0] = True
    for key in keys:
        changed[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(changed)


def prediction_edges(store: GraphStore, run: RunRef, prompt: str | None) -> list[pd.DataFrame]:
    """The seeds' edges into the logits, as cone rows (roles added from the prompts)."""
    import json

    params: dict = {"run": run.key}
    where = ""
    if prompt is not None:
        where, params["prompt"] = " AND r.prompt = $prompt", prompt
    roles = {
        r["id"]: {int(v): k for k, v in reversed(list(json.loads(r["roles"]).items()))}
        for r in store.query(
            "MATCH (p:Prompt) WHERE p.run = $run RETURN p.id AS id, p.roles AS roles",
            {"run": run.key},
        )
    }
    frames = []
    for source in ("Firing", "Site"):
        rows = store.query_if_present(PREDICTS.format(source=source, where=where), params)
        for row in rows:
            row["dest_role"] = row["source_role"] = roles.get(row["prompt"], {}).get(row["dest"])
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frames.append(frame.assign(site=source == "Site"))
    return frames
