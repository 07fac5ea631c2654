"""The components that write into the residual stream, and how they are indexed.

Every upstream contribution is indexed by a position in one fixed component
axis, laid out layer by layer::

    embed, pos_embed, [0.0 .. 0.H-1, attn_bias0, mlp0], [1.0 .. ], ...

so that the components upstream of layer ``l``'s attention are exactly a prefix
of the axis (``ComponentLayout.n_upstream(l)``). The head's own query/key bias
(the homogeneous coordinate of the augmented QK matrix) is not on this axis: it
belongs to the head itself and is carried as a separate column.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from headgraph.errors import InputError
from headgraph.names import Component

if TYPE_CHECKING:  # the CLI reads layouts before torch is needed: import it when it is
    import torch

KINDS = ("embed", "pos_embed", "head", "attn_bias", "mlp", "qk_bias")


def head(layer: int, index: int) -> Component:
    """The attention head ``layer.index``."""
    return Component("head", layer, index)


@dataclass(frozen=True)
class ComponentLayout:
    """The component axis of a model (see the module docstring)."""

    n_layers: int
    n_heads: int
    has_mlp: bool = True

    @property
    def per_layer(self) -> int:
        """Components each layer adds: its heads, its attention bias and its MLP."""
        return self.n_heads + 1 + int(self.has_mlp)

    @cached_property
    def components(self) -> tuple[Component, ...]:
        """Every component on the axis, in axis order."""
        out = [Component("embed"), Component("pos_embed")]
        for l in range(self.n_layers):
            out.extend(head(l, h) for h in range(self.n_heads))
            out.append(Component("attn_bias", l))
            if self.has_mlp:
                out.append(Component("mlp", l))
        return tuple(out)

    def __len__(self) -> int:
        return 2 + self.n_layers * self.per_layer

    def n_upstream(self, layer: int) -> int:
        """Number of components (a prefix of the axis) upstream of layer ``layer``'s attention."""
        return 2 + layer * self.per_layer

    def head_mask(self) -> torch.Tensor:
        """``[component]`` bool: which positions of the axis are heads."""
        import torch

        return torch.tensor([c.kind == "head" for c in self.components])

    def head_index(self, layer: int, index: int) -> int:
        """Position of head ``layer.index`` on the axis."""
        return 2 + layer * self.per_layer + index

    def head_columns(self, device=None) -> torch.Tensor:
        """``[layer, head]`` each head's position on the axis."""
        import torch

        heads = torch.arange(self.n_heads, device=device)
        starts = torch.tensor([self.head_index(l, 0) for l in range(self.n_layers)], device=device)
        return starts[:, None] + heads

    def check_head(self, layer: int, index: int) -> None:
        """Raise InputError naming the model's size if ``layer.index`` is not one of its heads."""
        if not (0 <= layer < self.n_layers and 0 <= index < self.n_heads):
            raise InputError(
                f"head {layer}.{index} does not exist: the model has {self.n_layers} layers "
                f"of {self.n_heads} heads (0.0 .. {self.n_layers - 1}.{self.n_heads - 1})"
            )
