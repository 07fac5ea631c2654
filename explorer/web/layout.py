"""Where each node of a circuit goes: token roles across, layers up (the paper's traced graphs).

One layout serves the browser view (sent as coordinates) and the static
figures, so both draw the same picture.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from headgraph.queries.cone import LOGITS_ORDER

NODE_GAP = 56  # between nodes sharing a cell
ROW_HEIGHT = 96
MARGIN = 80


@dataclass(frozen=True)
class Layout:
    """Coordinates in pixels (y grows downwards; the embeddings are at the bottom).

    Attributes:
        positions: Node id -> (x, y).
        columns: ``(role, x)`` for the axis labels.
        rows: ``(label, y)`` for the axis labels.
        width, height: The drawing's size.
    """

    positions: dict[str, tuple[float, float]]
    columns: tuple[tuple[str, float], ...]
    rows: tuple[tuple[str, float], ...]
    width: float
    height: float


def row_label(order: float) -> str:
    """``embeddings``, ``layer 3``, ``after layer 3`` (MLPs, biases) or ``logits`` for a
    layer order."""
    if order < 0:
        return "embeddings"
    if order >= LOGITS_ORDER:
        return "logits"
    if order == int(order):
        return f"layer {int(order)}"
    return f"after layer {int(order - 0.5)}"


def layout(circuit) -> Layout:
    """Place a :class:`~headgraph.queries.circuit.Circuit`: a column per role, a row per layer."""
    cells = defaultdict(list)
    for node in circuit.nodes:
        cells[(node.role, node.order)].append(node.id)
    widest = defaultdict(int)
    for (role, _), ids in cells.items():
        widest[role] = max(widest[role], len(ids))
    x, columns = MARGIN + 40.0, []
    for role in circuit.roles:
        width = max(150.0, widest[role] * NODE_GAP + 30.0)
        columns.append((role, x + width / 2))
        x += width
    orders = sorted({n.order for n in circuit.nodes})
    y_of = {order: MARGIN + (len(orders) - 1 - i) * ROW_HEIGHT for i, order in enumerate(orders)}
    x_of = dict(columns)
    positions = {}
    for (role, order), ids in cells.items():
        for j, node in enumerate(sorted(ids, key=_head_key)):
            offset = (j - (len(ids) - 1) / 2) * NODE_GAP
            positions[node] = (x_of[role] + offset, float(y_of[order]))
    return Layout(
        positions=positions,
        columns=tuple(columns),
        rows=tuple((row_label(o), float(y_of[o])) for o in orders),
        width=x + MARGIN,
        height=MARGIN * 2 + max(len(orders) - 1, 0) * ROW_HEIGHT + 20,
    )


def _head_key(node_id: str):
    component = node_id.partition("@")[0]
    parts = component.replace(":", ".").split(".")
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]
