"""What the final normalisation restores when one seed head alone goes to its baseline.

The prediction is read from the final residual x at the answer position after the
final norm (LayerNorm or RMSNorm): ``logit_diff = N(x) . w`` with
``N(x) = x~ / sigma(x)`` (``x~`` centred for LayerNorm, as is; ``sigma`` its root
mean square). The seeds' shares read each head's output along the frozen scale,
``o . w / sigma(x)``: linear, and adding up to the prediction.

When one head's output o alone moves by ``delta`` (to its baseline), the norm
rescales what the others write. Where they write the same direction (several
name movers copying one name), most of the lost logit comes back:

    kept(delta) = (N(x) - N(x - delta)) . w  /  (delta . w / sigma(x)),  in [0, 1]

is the part of the linear loss that stays lost (on tiny-ioi 0.2-0.4 for each of
the four name movers; path patching a name mover's value input measures the same
few percent). Relevance uses it for a seed head's value edges (docs/core.md,
"Relevance"): what each reports is its loss alone, while its upstream heads, which
feed every seed at once, still receive the whole share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class FinalNorm:
    """The final residual at each prompt's answer position, as the final norm reads it.

    Attributes:
        residual: ``[batch, d_model]`` x.
        centred: The norm subtracts the mean (LayerNorm); False for RMSNorm.
        eps: The norm's epsilon.
    """

    residual: Tensor
    centred: bool = True
    eps: float = 1e-5

    def kept(self, delta: Tensor, reader: Tensor, batch: Tensor) -> Tensor:
        """``[n]`` the part of each output change's linear loss that stays lost through the
        norm when it alone is removed, in [0, 1] (1 where the linear loss is zero).

        Args:
            delta: ``[n, d_model]`` an output's change (its value less its baseline's).
            reader: ``[n, d_model]`` the prediction's reader there (``w / sigma(x)``).
            batch: ``[n]`` each row's prompt.
        """
        x = self.residual[batch].to(delta.dtype)  # [n, d_model]
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
            delta = delta - delta.mean(-1, keepdim=True)
        linear = (delta * reader).sum(-1)  # [n]
        rms = self._rms(x)
        exact = ((x / rms[:, None] - self._normed(x - delta)) * reader).sum(-1) * rms
        safe = linear.abs() > 1e-12 * reader.norm(dim=-1) * delta.norm(dim=-1).clamp_min(1e-30)
        return torch.where(safe, exact / torch.where(safe, linear, 1.0), 1.0).clamp(0, 1)

    def _rms(self, x: Tensor) -> Tensor:
        return (x.pow(2).mean(-1) + self.eps).sqrt()  # [n]

    def _normed(self, x: Tensor) -> Tensor:
        """``N(x)`` for an ``x`` already centred where the norm centres."""
        return x / self._rms(x)[:, None]
