"""The traced firings and edges of one batch, as columns, and their records."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from headgraph.ingest.core.components import Component, ComponentLayout
from headgraph.ingest.core.params import SIDE_NAMES
from headgraph.ingest.core.records import Edge, Firing, Prompt
from headgraph.ingest.core.seeding import PredictionSeeds, PredictionSplit
from headgraph.ingest.core.signals import FiringTable

SIDES = SIDE_NAMES  # edge_side indexes it


@dataclass(frozen=True)
class BatchTrace:
    """The traced firings and edges of one batch, as columns.

    Attributes:
        prompts: The batch's prompts (row ``b`` of every tensor).
        layout: The model's component axis.
        firings: Every firing of the batch with its sparse set.
        traced: ``[firing]`` bool, reached from the seeds.
        edge_firing: ``[edge]`` the downstream firing (row of ``firings``).
        edge_side: ``[edge]`` the side, an index into :data:`SIDES` (query, key, value,
            inhibit).
        edge_component: ``[edge]`` position on the component axis;
            ``len(layout)`` stands for the downstream head's own QK bias (query and key
            sides only).
        edge_token: ``[edge]`` the token where the component writes.
        edge_weight: ``[edge]`` its contribution to the side's signal.
        edge_share: ``[edge]`` weight / the side's whole signal.
        edge_relevance: ``[edge]`` the share of the prediction that flows through the
            edge: its downstream firing's relevance times its part of the side's
            positive contributions (see docs/core.md).
        prediction: With seeding from the prediction: each prompt's split prediction.
        seeded: With seeding from the prediction: the (head, source) seeds, each the
            firing (answer position -> source) and its share of the prediction.
        edge_direction: Only when asked for (``verify``): ``[edge, d_model]`` the
            direction along which the downstream side reads the upstream output, in the
            residual stream before its norm (a value edge's is ``W_V W_O R``).
    """

    prompts: tuple[Prompt, ...]
    layout: ComponentLayout
    firings: FiringTable
    traced: Tensor
    edge_firing: Tensor
    edge_side: Tensor
    edge_component: Tensor
    edge_token: Tensor
    edge_weight: Tensor
    edge_share: Tensor
    edge_relevance: Tensor
    prediction: PredictionSplit | None = None
    seeded: PredictionSeeds | None = None
    edge_direction: Tensor | None = None

    def firing_records(self, *, traced_only: bool = False) -> list[Firing]:
        """The firings as records (all of them, or only those tracing reached)."""
        f = self.firings
        columns = zip(
            *(t.tolist() for t in (f.batch, f.layer, f.head, f.dest, f.source)),
            f.attention.tolist(),
            f.score.tolist(),
            self.sparse_sets(),
            self.traced.tolist(),
            strict=True,
        )
        out = []
        for b, l, h, d, s, attention, score, (svs, terms), traced in columns:
            if traced_only and not traced:
                continue
            prompt = self.prompts[b]
            out.append(
                Firing(
                    prompt.id,
                    l,
                    h,
                    d,
                    s,
                    prompt.role_at(d),
                    prompt.role_at(s),
                    attention,
                    score,
                    svs,
                    terms,
                    traced,
                )
            )
        return out

    def edge_records(self) -> list[Edge]:
        """The edges as records, each carrying its firing's sparse set and terms."""
        f = self.firings
        sparse = self.sparse_sets()
        heads = f.head.tolist()
        axis = (*self.layout.components, None)
        rows = zip(
            *(t.tolist() for t in (self.edge_firing, self.edge_side, self.edge_component)),
            *(t.tolist() for t in (self.edge_token, self.edge_weight, self.edge_share)),
            self.edge_relevance.tolist(),
            strict=True,
        )
        b_col, l_col, d_col, s_col = (t.tolist() for t in (f.batch, f.layer, f.dest, f.source))
        out = []
        for i, side, c, token, weight, share, relevance in rows:
            prompt, l, h = self.prompts[b_col[i]], l_col[i], heads[i]
            upstream = axis[c] or Component("qk_bias", l, h)
            svs, terms = sparse[i]
            out.append(
                Edge(
                    prompt.id,
                    upstream,
                    l,
                    h,
                    SIDES[side],
                    token,
                    prompt.role_at(token),
                    d_col[i],
                    s_col[i],
                    weight,
                    share,
                    svs,
                    terms,
                    relevance,
                )
            )
        return out

    def to_pandas(self, what: str = "edges"):
        """The batch's ``edges`` or ``firings`` as a pandas data frame, one row per record."""
        from headgraph.ingest.core.tables import batch_frame

        return batch_frame(self, what)

    def sparse_sets(self) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
        """Per firing: its sparse set S (strongest first) and the terms, same order."""
        f = self.firings
        sorted_terms = torch.gather(f.terms, -1, f.order).tolist()
        return [
            (tuple(order[:n]), tuple(terms[:n]))
            for order, terms, n in zip(f.order.tolist(), sorted_terms, f.size.tolist(), strict=True)
        ]
