import pytest
import torch

from headgraph.ingest.core.svd import DecompositionError, augmented_factors, decompose_qk


def random_weights(seed=0, layers=2, heads=3, d_model=20, d_head=5):
    g = torch.Generator().manual_seed(seed)
    shape = (layers, heads, d_model, d_head)
    return (
        torch.randn(shape, generator=g),
        torch.randn(shape, generator=g),
        torch.randn(shape[:2] + (d_head,), generator=g),
        torch.randn(shape[:2] + (d_head,), generator=g),
    )


def dense_omega(W_Q, W_K, b_Q, b_K):
    A, B = augmented_factors(W_Q, b_Q).double(), augmented_factors(W_K, b_K).double()
    return A @ B.transpose(-1, -2)  # [layer, head, d_model+1, d_model+1]


def test_factors_reconstruct_the_augmented_matrix():
    weights = random_weights()
    qk = decompose_qk(*weights)
    rebuilt = (qk.U * qk.S.unsqueeze(-2)) @ qk.V.transpose(-1, -2)
    torch.testing.assert_close(rebuilt, dense_omega(*weights), rtol=1e-10, atol=1e-10)


def test_augmented_matrix_has_the_paper_block_layout():
    W_Q, W_K, b_Q, b_K = (t.double() for t in random_weights(1))
    omega = dense_omega(W_Q, W_K, b_Q, b_K)[1, 2]
    w_q, w_k, bq, bk = W_Q[1, 2], W_K[1, 2], b_Q[1, 2], b_K[1, 2]
    torch.testing.assert_close(omega[:-1, :-1], w_q @ w_k.T)
    torch.testing.assert_close(omega[:-1, -1], w_q @ bk)
    torch.testing.assert_close(omega[-1, :-1], bq @ w_k.T)
    torch.testing.assert_close(omega[-1, -1], bq @ bk)


def test_singular_values_match_a_dense_svd_and_vectors_are_orthonormal():
    weights = random_weights(2)
    qk = decompose_qk(*weights)
    dense = torch.linalg.svdvals(dense_omega(*weights))[..., : qk.rank]
    torch.testing.assert_close(qk.S, dense, rtol=1e-9, atol=1e-9)
    assert (qk.S[..., :-1] >= qk.S[..., 1:]).all()
    eye = torch.eye(qk.rank, dtype=torch.float64)
    torch.testing.assert_close(
        qk.U.transpose(-1, -2) @ qk.U, eye.expand_as(qk.U.transpose(-1, -2) @ qk.U)
    )
    torch.testing.assert_close(
        qk.V.transpose(-1, -2) @ qk.V, eye.expand_as(qk.V.transpose(-1, -2) @ qk.V)
    )
    assert qk.U.dtype == torch.float64


def test_signs_are_canonical_and_deterministic():
    weights = random_weights(3)
    first, second = decompose_qk(*weights), decompose_qk(*weights)
    assert torch.equal(first.U, second.U) and torch.equal(first.V, second.V)
    flipped = decompose_qk(weights[0], weights[1], weights[2], weights[3])
    pivot = flipped.U.abs().argmax(dim=-2, keepdim=True)
    assert (torch.gather(flipped.U, -2, pivot) > 0).all()


def test_a_tie_in_magnitude_goes_to_the_first_largest_entry():
    """A singular vector whose largest entries tie (``[-1, 1, 0, 0] / sqrt 2``) is signed by
    the first of them: ``[1, -1, 0, 0] / sqrt 2``."""
    W_Q = torch.tensor([-1.0, 1.0, 0.0]).reshape(1, 1, 3, 1)
    W_K = torch.tensor([0.5, 2.0, -1.0]).reshape(1, 1, 3, 1)
    b_Q, b_K = torch.zeros(1, 1, 1), torch.full((1, 1, 1), 0.3)
    qk = decompose_qk(W_Q, W_K, b_Q, b_K)
    half = 0.5**0.5
    torch.testing.assert_close(qk.U[0, 0, :, 0], torch.tensor([half, -half, 0.0, 0.0]).double())
    rebuilt = qk.U[0, 0] * qk.S[0, 0] @ qk.V[0, 0].T  # the flip is made on both sides
    torch.testing.assert_close(rebuilt, dense_omega(W_Q, W_K, b_Q, b_K)[0, 0])


def test_non_finite_weights_fail_the_reconstruction_check_with_the_head_named():
    W_Q, W_K, b_Q, b_K = random_weights(4)
    W_K[1, 0, 3, 2] = float("nan")
    with pytest.raises(DecompositionError, match=r"head 1\.0's query/key weights hold NaN"):
        decompose_qk(W_Q, W_K, b_Q, b_K)


def test_readouts_map_query_and_key_vectors_onto_the_singular_vectors():
    """``A (A^+ U) = U``: a query vector ``x~ A`` times the readout is ``x~ . u_k``."""
    weights = random_weights(5)
    qk = decompose_qk(*weights)
    torch.testing.assert_close(qk.query_factor @ qk.query_readout, qk.U, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(qk.key_factor @ qk.key_readout, qk.V, rtol=1e-10, atol=1e-10)


def test_a_rank_deficient_head_takes_the_pseudo_inverse():
    """A head whose query weights use 2 of their 5 columns (a pruned head's zeros) gets
    ``pinv(A) U``, the pseudo-inverse's answer, not a triangular solve's infinities; the
    other heads equal it too. Its singular vectors stay orthonormal (``A R^-1`` cannot
    give them: they come from the QR's ``Q``)."""
    W_Q, W_K, b_Q, b_K = random_weights(6)
    W_Q[0, 1, :, 2:] = 0.0
    b_Q[0, 1, 2:] = 0.0
    qk = decompose_qk(W_Q, W_K, b_Q, b_K)
    expected = torch.linalg.pinv(qk.query_factor) @ qk.U
    assert torch.isfinite(qk.query_readout).all()
    torch.testing.assert_close(qk.query_readout, expected, rtol=1e-8, atol=1e-8)
    gram = qk.U.transpose(-1, -2) @ qk.U  # [layer, head, rank, rank]
    torch.testing.assert_close(gram, torch.eye(5, dtype=gram.dtype).expand_as(gram))
