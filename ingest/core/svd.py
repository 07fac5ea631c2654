"""SVD of every head's augmented QK matrix (METHOD.md section 2).

For head (l, h) the augmented matrix is

    Omega~ = [[W_Q W_K^T, W_Q b_K], [b_Q W_K^T, b_Q . b_K]] = A B^T,
    A = [W_Q; b_Q],  B = [W_K; b_K]          # [d_model+1, d_head] each

so with x~ = [x; 1] the unscaled score is a(d, s) = x~_d^T Omega~ x~_s. Its SVD
is computed from the factors: A = Q_A R_A, B = Q_B R_B, and the small
R_A R_B^T = U' Sigma V'^T gives U = Q_A U', V = Q_B V' in O(d_model d_head^2)
per head, in float64. Q_A is not formed: U = A (R_A^-1 U'), whose second factor is
the readout below (Q_A is formed only for a head whose R_A is ill-conditioned).

For rotary heads (:mod:`headgraph.ingest.core.rotary`) the projections are
taken from the rotated query and key vectors instead: ``x^ . u_k = q . (A^+ u_k)``,
so the decomposition also keeps the factors and the *readouts* ``A^+ U = R_A^+ U'``
and ``B^+ V``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class DecompositionError(RuntimeError):
    """The SVD does not reconstruct the augmented QK matrix."""


@dataclass(frozen=True)
class QKDecomposition:
    """Singular triplets of every head's augmented QK matrix, in float64.

    Attributes:
        U: Left (query-side) singular vectors, ``[layer, head, d_model+1, rank]``.
        S: Singular values, descending, ``[layer, head, rank]``.
        V: Right (key-side) singular vectors, ``[layer, head, d_model+1, rank]``.
        query_factor, key_factor: ``A = [W_Q; b_Q]`` and ``B = [W_K; b_K]``,
            ``[layer, head, d_model+1, d_head]``.
        query_readout, key_readout: ``A^+ U`` and ``B^+ V``, ``[layer, head, d_head, rank]``:
            a query (key) vector's projections on the singular vectors.
    """

    U: Tensor
    S: Tensor
    V: Tensor
    query_factor: Tensor
    key_factor: Tensor
    query_readout: Tensor
    key_readout: Tensor

    @property
    def rank(self) -> int:
        return self.S.shape[-1]

    def to(self, device: torch.device | str, dtype: torch.dtype) -> QKDecomposition:
        """A copy on ``device`` in ``dtype`` (for the batched projections)."""
        return QKDecomposition(
            *(
                t.to(device=device, dtype=dtype)
                for t in (
                    *(self.U, self.S, self.V, self.query_factor, self.key_factor),
                    *(self.query_readout, self.key_readout),
                )
            )
        )


def augmented_factors(W: Tensor, b: Tensor) -> Tensor:
    """Stack a weight and its bias into an augmented factor.

    Args:
        W: ``[layer, head, d_model, d_head]``.
        b: ``[layer, head, d_head]``.

    Returns:
        ``[layer, head, d_model+1, d_head]``: the bias as the last row.
    """
    return torch.cat([W, b.unsqueeze(-2)], dim=-2)


def decompose_qk(
    W_Q: Tensor, W_K: Tensor, b_Q: Tensor, b_K: Tensor, *, tolerance: float = 1e-8
) -> QKDecomposition:
    """SVD of every head's augmented QK matrix, through its two factors.

    Signs are made canonical (the largest-magnitude entry of each left singular
    vector is positive) so that indices and signs are reproducible.

    Args:
        W_Q, W_K: ``[layer, head, d_model, d_head]`` (after weight processing).
        b_Q, b_K: ``[layer, head, d_head]``.
        tolerance: Largest relative error allowed when the factors are checked
            against ``A B^T`` on random probe vectors.

    Raises:
        DecompositionError: the reconstruction check fails.
    """
    A = augmented_factors(W_Q, b_Q).double()  # [layer, head, d_model+1, d_head]
    B = augmented_factors(W_K, b_K).double()
    _check_finite(A, B)
    R_A = torch.linalg.qr(A, mode="r").R  # [layer, head, d_head, d_head]; Q is not formed
    R_B = torch.linalg.qr(B, mode="r").R
    U_small, S, Vh_small = torch.linalg.svd(R_A @ R_B.transpose(-1, -2))
    V_small = Vh_small.transpose(-1, -2)
    query_readout = _solve_upper(R_A, U_small)  # [layer, head, d_head, rank]: A^+ U
    key_readout = _solve_upper(R_B, V_small)
    U = _singular_vectors(A, R_A, U_small, query_readout)  # [layer, head, d_model+1, rank]
    V = _singular_vectors(B, R_B, V_small, key_readout)

    # Canonical signs: flip u_k and v_k together so u_k's largest entry is positive.
    signs = torch.sign(U.amax(-2, keepdim=True) + U.amin(-2, keepdim=True))  # [.., 1, rank]
    if (signs == 0).any():  # a tie in magnitude: the first of the largest entries decides
        pivot = U.abs().argmax(dim=-2, keepdim=True)
        signs = torch.sign(torch.gather(U, -2, pivot))
        signs[signs == 0] = 1.0
    for t in (U, V, query_readout, key_readout):
        t.mul_(signs)

    _check_reconstruction(A, B, U, S, V, tolerance)
    return QKDecomposition(U, S, V, A, B, query_readout, key_readout)


def _check_finite(A: Tensor, B: Tensor) -> None:
    """Refuse NaN or infinite factors, naming the first such head. A head's sum is finite
    exactly when its entries are (float64 sums of weights cannot overflow), so only a
    non-finite sum has its entries looked at."""
    sums = A.sum((-1, -2)) + B.sum((-1, -2))  # [layer, head]
    if torch.isfinite(sums).all():
        return
    finite = torch.isfinite(A).flatten(-2).all(-1) & torch.isfinite(B).flatten(-2).all(-1)
    if not finite.all():
        l, h = (int(i) for i in (~finite).nonzero()[0])
        raise DecompositionError(
            f"head {l}.{h}'s query/key weights hold NaN or infinite values: the model's "
            "weights are damaged; reload or retrain it"
        )


SINGULAR = 1e-10  # a triangular factor whose diagonal falls this far below its largest entry
CONDITIONED = 1e-6  # ... and this far: A R^-1 would lose digits, so Q is formed instead


def _diagonal_within(R: Tensor, ratio: float) -> Tensor:
    """``[...]`` True where every diagonal entry of triangular ``R [..., n, n]`` is above
    ``ratio`` of its largest in magnitude (False for an all-zero diagonal)."""
    diagonal = R.diagonal(dim1=-2, dim2=-1).abs()  # [..., n]
    return diagonal.amin(-1) > ratio * diagonal.amax(-1)


def _singular_vectors(factor: Tensor, R: Tensor, small: Tensor, readout: Tensor) -> Tensor:
    """``Q small`` for ``factor = Q R`` (``[..., d_model+1, d_head]``), as ``factor readout``
    (``readout = R^-1 small``): the QR's orthonormal factor is formed only for the heads
    whose ``R`` is ill-conditioned, where the product would lose digits."""
    vectors = factor @ readout  # [..., d_model+1, rank]
    ill = ~_diagonal_within(R, CONDITIONED)
    if ill.any():
        vectors[ill] = torch.linalg.qr(factor[ill]).Q @ small[ill]
    return vectors


def _solve_upper(R: Tensor, rhs: Tensor) -> Tensor:
    """``R^+ rhs`` for upper-triangular ``R [..., n, n]``: a triangular solve, and the
    pseudo-inverse for a head whose factor is (nearly) rank-deficient (a diagonal entry
    below ``SINGULAR`` of its largest)."""
    regular = _diagonal_within(R, SINGULAR)
    if regular.all():
        return torch.linalg.solve_triangular(R, rhs, upper=True)
    out = torch.empty_like(rhs)
    out[regular] = torch.linalg.solve_triangular(R[regular], rhs[regular], upper=True)
    out[~regular] = torch.linalg.pinv(R[~regular]) @ rhs[~regular]
    return out


def _check_reconstruction(
    A: Tensor, B: Tensor, U: Tensor, S: Tensor, V: Tensor, tolerance: float
) -> None:
    """Compare x^T (U S V^T) y with (x^T A)(y^T B)^T on fixed random probes, per head."""
    generator = torch.Generator().manual_seed(0)
    n_layers, n_heads, d_aug, _ = A.shape
    probes = torch.randn(2, 16, d_aug, generator=generator, dtype=torch.float64)
    x, y = probes[0], probes[1]  # [probe, d_model+1]
    reference = (x @ A) @ (y @ B).transpose(-1, -2)  # [layer, head, probe, probe]
    rebuilt = ((x @ U) * S.unsqueeze(-2)) @ (y @ V).transpose(-1, -2)
    scale = reference.flatten(-2).norm(dim=-1).clamp_min(1e-300)
    error = (reference - rebuilt).flatten(-2).norm(dim=-1) / scale  # [layer, head]
    worst = error.max()
    if not torch.isfinite(worst) or worst > tolerance:
        l, h = divmod(int(error.nan_to_num(float("inf")).argmax()), n_heads)
        raise DecompositionError(
            f"SVD of head {l}.{h}'s augmented QK matrix does not reconstruct it "
            f"(relative error {float(error[l, h]):.2e} > {tolerance:.0e}); "
            "check the model's weights for NaN or infinite values"
        )
