"""Static figures: the circuit as SVG, PNG or a self-contained HTML page, and the paper's plots.

The circuit is drawn with the explorer's own layout (``explorer.layout``), so
the file looks like the browser view. The HTML file is the explorer page itself,
with its script, style and the circuit's data inlined: it opens anywhere, offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from headgraph.errors import InputError
from headgraph.explorer.web.layout import layout
from headgraph.queries.export import write_staged

SIDE_COLOURS = {
    "query": "#1f6fd1", "key": "#e07b00", "value": "#8e44ad", "inhibit": "#c0392b",
    "logit": "#2a9d4b",
}  # fmt: skip
FORMATS = (".svg", ".png", ".html")


def render_circuit(circuit, out: str | Path) -> None:
    """Write the circuit to ``out``: ``.svg``, ``.png`` or ``.html``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{out}: write .svg, .png or .html")
    if suffix == ".html":
        write_staged(out, lambda path: path.write_text(circuit_html(circuit)))
    else:
        write_staged(out, lambda path: _draw(circuit, path, suffix[1:]))


def circuit_html(circuit) -> str:
    """The explorer page with its assets and this circuit inlined (no server, no network)."""
    from headgraph.explorer.web.server import STATIC, circuit_payload

    page = (STATIC / "index.html").read_text()
    style = (STATIC / "app.css").read_text()
    script = (STATIC / "app.js").read_text()
    data = json.dumps(circuit_payload(circuit)).replace("</", "<\\/")
    page = page.replace('<link rel="stylesheet" href="app.css">', f"<style>\n{style}</style>")
    return page.replace(
        '<script src="app.js"></script>',
        f"<script>window.HEADGRAPH_STATIC = {data};</script>\n<script>\n{script}</script>",
    )


def short_name(component: str) -> str:
    """A label that fits in a node: ``emb``, ``pos``, ``1.0b`` (its QK bias), ``ab3``."""
    for long, short in (
        ("pos_embed", "pos"),
        ("embed", "emb"),
        (":qk_bias", "b"),
        ("attn_bias", "ab"),
    ):
        component = component.replace(long, short)
    return component


def _draw(circuit, path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyArrowPatch

    placed = layout(circuit)
    scale = 1 / 100  # pixels to inches
    fig = plt.figure(figsize=(placed.width * scale, placed.height * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, placed.width)
    ax.set_ylim(placed.height, 0)
    ax.axis("off")
    for label, y in placed.rows:
        ax.axhline(y, color="#eeeeee", zorder=0)
        ax.text(6, y, label, va="center", fontsize=8, color="#888888")
    for role, x in placed.columns:
        ax.text(x, placed.height - 12, role, ha="center", fontsize=9, color="#666666")
    most = max((e.prompts for e in circuit.edges), default=1)
    for e in circuit.edges:
        (x1, y1), (x2, y2) = placed.positions[e.source], placed.positions[e.target]
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1 - 12),
                (x2, y2 + 12),
                connectionstyle=f"arc3,rad={0.15 if e.side == 'key' else -0.15}",
                arrowstyle="-|>",
                mutation_scale=8,
                linewidth=0.6 + 4 * e.prompts / most,
                color=SIDE_COLOURS[e.side],
                alpha=0.6,
                zorder=1,
            )
        )
    for n in circuit.nodes:
        x, y = placed.positions[n.id]
        ax.add_patch(
            Circle(
                (x, y),
                12,
                facecolor="#dfe9f7" if n.fires else "white",
                edgecolor="#444444",
                linestyle="-" if n.fires else "--",
                zorder=2,
            )
        )
        ax.text(x, y, short_name(n.component), ha="center", va="center", fontsize=6.5, zorder=3)
    scope = f"prompt {circuit.prompt}" if circuit.prompt else f"{circuit.n_prompts} prompts"
    ax.text(6, 16, f"run {circuit.run} ({circuit.model}), {scope}: blue query side, "
            "orange key side, green into the logits, width = prompts", fontsize=9)  # fmt: skip
    fig.savefig(path, format=kind, dpi=150)
    plt.close(fig)


def plot_sparse_set_sizes(sizes: dict, out: Path, *, heads: int = 12, title: str = "") -> None:
    """Histograms of |S| per head (the ``heads`` with the most firings), in a grid."""
    chosen = sorted(sizes, key=lambda h: (-sum(sizes[h].values()), h))[:heads]

    def draw(axes, head):
        counts = sizes[head]
        xs = range(1, max(counts) + 1)
        axes.bar(xs, [counts.get(x, 0) for x in xs], color="#1f6fd1")
        mean = sum(k * n for k, n in counts.items()) / sum(counts.values())
        axes.set_title(f"{head}: {sum(counts.values())} firings, mean |S| {mean:.1f}", fontsize=8)
        axes.set_xlabel("|S|", fontsize=7)

    _grid(chosen, draw, out, title or "size of the sparse set S per head")


def plot_singular_vector_usage(usage: dict, out: Path, *, title: str = "") -> None:
    """Per head, how many firings have each singular vector in S."""

    def draw(axes, head):
        used = usage[head]
        if not used:
            axes.set_title(f"{head}: no firings", fontsize=8)
            return
        xs = range(max(used) + 1)
        axes.bar(xs, [used.get(k, (0, 0))[0] for k in xs], color="#e07b00")
        axes.set_title(f"{head}", fontsize=8)
        axes.set_xlabel("singular vector", fontsize=7)
        axes.set_ylabel("firings with it in S", fontsize=7)

    _grid(list(usage), draw, out, title or "singular-vector usage per head")


def _grid(heads: list[str], draw, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not heads:
        raise InputError("nothing to plot: the run has no firings")
    columns = min(4, len(heads))
    rows = (len(heads) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat[len(heads) :]:
        axis.axis("off")
    for axis, head in zip(axes.flat, heads, strict=False):
        draw(axis, head)
        axis.tick_params(labelsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_staged(out, lambda path: fig.savefig(path, format=out.suffix[1:] or "png", dpi=120))
    plt.close(fig)
