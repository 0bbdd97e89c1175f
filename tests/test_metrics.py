"""analysis.metrics on matrices whose answers are known by construction."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from analysis import metrics

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, (5, 5), elements=finite))
def test_symmetric_matrix_has_zero_asymmetry(A):
    assert metrics.asymmetry(A + A.T) == pytest.approx(0.0, abs=1e-12)


def test_antisymmetric_matrix_has_maximal_asymmetry():
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert metrics.asymmetry(A) == pytest.approx(2.0)  # ‖A − Aᵀ‖ = 2‖A‖


@settings(deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_commuting_matrices_have_zero_commutator_and_full_alignment(seed):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    F = U @ np.diag(np.sort(rng.uniform(0.1, 3, 6))[::-1]) @ U.T
    W_p = U @ np.diag(rng.uniform(0.1, 2, 6)) @ U.T
    assert metrics.relative_commutator(F, W_p) < 1e-12
    np.testing.assert_allclose(metrics.eigenspace_alignment(W_p, F), 1.0, atol=1e-10)


def test_rotation_is_not_aligned():
    F = np.diag([3.0, 2.0, 1.0])
    W_p = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # swaps e1 and e2
    np.testing.assert_allclose(metrics.eigenspace_alignment(W_p, F), [0.0, 0.0, 1.0], atol=1e-12)
    assert metrics.relative_commutator(F, W_p) > 0.1


def test_spectrum_is_sorted_and_matches_diagonal():
    np.testing.assert_allclose(metrics.spectrum(np.diag([1.0, 3.0, 2.0])), [3.0, 2.0, 1.0])


def test_rank_k_embeddings_have_effective_rank_k():
    rng = np.random.default_rng(0)
    for k in (1, 3, 8):
        Q, _ = np.linalg.qr(rng.normal(size=(64, k)))
        V, _ = np.linalg.qr(rng.normal(size=(16, k)))
        Z = Q @ V.T  # k equal singular values
        assert metrics.effective_rank(Z) == pytest.approx(k, rel=1e-6)


def test_effective_rank_of_an_uneven_spectrum_uses_singular_values_not_their_squares():
    """RankMe (Garrido et al. 2023, Eq. 1): exp(−Σ p_k log p_k), p_k = σ_k / Σσ. With σ = (4, 2, 1, 1):
    p = (1/2, 1/4, 1/8, 1/8), entropy = (1/2 + 2/4 + 2·3/8) ln 2 = 1.75 ln 2, rank = 2^1.75 ≈ 3.364.
    Computed on σ² instead, p = (16, 4, 1, 1)/22 and the rank would be ≈ 2.28."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(50, 4)))
    V, _ = np.linalg.qr(rng.normal(size=(12, 4)))
    Z = Q @ np.diag([4.0, 2.0, 1.0, 1.0]) @ V.T
    assert metrics.effective_rank(Z) == pytest.approx(2**1.75, rel=1e-9)
    squares = np.array([16.0, 4.0, 1.0, 1.0]) / 22
    assert np.exp(-(squares * np.log(squares)).sum()) == pytest.approx(2.28, abs=0.01)  # what σ² would give
    assert metrics.effective_rank(torch.tensor(Z, dtype=torch.float32)) == pytest.approx(2**1.75, rel=1e-5)


def test_constant_embedding_has_zero_std_and_gaussian_has_unit_std():
    assert metrics.std_of_l2_normalized(np.ones((32, 8))) == pytest.approx(0.0, abs=1e-12)
    Z = np.random.default_rng(0).normal(size=(4096, 128))
    assert metrics.std_of_l2_normalized(Z) == pytest.approx(1.0, abs=0.02)


def test_torch_and_numpy_give_the_same_numbers():
    A = np.random.default_rng(1).normal(size=(4, 4))
    assert metrics.asymmetry(torch.tensor(A, dtype=torch.float32)) == pytest.approx(metrics.asymmetry(A), rel=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.asymmetry(np.ones((2, 3))), "square"),
    (lambda: metrics.relative_commutator(np.eye(2), np.eye(3)), "shape"),
    (lambda: metrics.asymmetry(np.array([[np.nan, 0], [0, 1]])), "NaN"),
    (lambda: metrics.effective_rank(np.ones(5)), "embeddings"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_alignment_ignores_the_sign_of_the_predictors_eigenvalues():
    """W_p = −I maps every u_j onto −u_j: the same direction, so aligned (cosine −1, alignment 1)."""
    np.testing.assert_allclose(metrics.eigenspace_alignment(-np.eye(3), np.diag([3.0, 2.0, 1.0])), 1.0)
