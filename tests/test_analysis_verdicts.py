"""Verdict rules, the predictor trajectory and mean_alignment, on inputs whose answers are known."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from analysis import metrics, verdicts as v
from analysis.trajectory import predictor_trajectory
from analysis_fakes import F_EIGENVALUES, P_EIGENVALUES, aligning_predictors, basis, static_predictors


@pytest.mark.parametrize("first, last, expected", [
    (1.4, 0.1, v.HOLDS),          # small at the end
    (1.4, 0.6, v.HOLDS),          # more than halved
    (1.4, 1.3, v.FAILS),          # fell by less than 10%
    (1.4, 1.6, v.FAILS),          # grew
    (1.4, 1.0, v.INCONCLUSIVE),   # fell by 29%, still large
    (0.05, 0.15, v.HOLDS),        # grew, but is small
])
def test_decay_outcome(first, last, expected):
    assert v.decay_outcome(first, last, small=0.2) == expected


@given(st.floats(0.0, 2.0), st.floats(0.0, 2.0))
def test_decay_outcome_is_monotone_in_the_last_value(first, last):
    order = [v.HOLDS, v.INCONCLUSIVE, v.FAILS]
    worse = v.decay_outcome(first, last + 0.1, small=0.2)
    assert order.index(worse) >= order.index(v.decay_outcome(first, last, small=0.2))


def test_one_snapshot_is_inconclusive():
    assert v.symmetry_outcome([0.0])[0] == v.INCONCLUSIVE
    assert v.alignment_outcome([1.0])[0] == v.INCONCLUSIVE


def test_alignment_outcome_reads_one_minus_alignment():
    assert v.alignment_outcome([0.3, 0.85])[0] == v.HOLDS      # misalignment 0.15 ≤ 0.2
    assert v.alignment_outcome([0.3, 0.32])[0] == v.FAILS      # misalignment 0.68 ≥ 0.9 × 0.7
    assert v.alignment_outcome([0.3, 0.5])[0] == v.INCONCLUSIVE  # 0.5: between 0.35 and 0.63


@pytest.mark.parametrize("std, rank, status", [
    (0.8, 30.0, v.NOT_COLLAPSED),
    (0.01, 30.0, v.COLLAPSED),     # one point on the sphere
    (0.5, 1.2, v.COLLAPSED),       # one direction
    (math.nan, 1.2, v.COLLAPSED),
    (0.8, math.nan, v.UNKNOWN),    # std alone cannot clear a run
    (math.nan, math.nan, v.UNKNOWN),
])
def test_collapse_status(std, rank, status):
    assert v.collapse_status(std, rank) == status


def test_collapse_status_of_real_embeddings():
    rng = np.random.default_rng(0)
    healthy = rng.normal(size=(256, 32))
    collapsed = np.ones((256, 32)) + 1e-4 * rng.normal(size=(256, 32))
    assert v.collapse_status(metrics.std_of_l2_normalized(healthy), metrics.effective_rank(healthy)) == v.NOT_COLLAPSED
    assert v.collapse_status(metrics.std_of_l2_normalized(collapsed), metrics.effective_rank(collapsed)) == v.COLLAPSED


def test_combine_and_last_finite():
    assert v.combine([v.HOLDS, v.HOLDS]) == v.HOLDS
    assert v.combine([v.HOLDS, v.INCONCLUSIVE]) == v.INCONCLUSIVE
    assert v.combine([v.HOLDS, v.FAILS, v.INCONCLUSIVE]) == v.FAILS
    assert v.combine([]) == v.INCONCLUSIVE
    assert v.last_finite([1.0, 2.0, math.nan]) == 2.0 and math.isnan(v.last_finite([math.nan]))


def test_mean_alignment_weights_by_eigenvalue():
    F = np.diag([3.0, 1.0, 0.0])
    W_p = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # keeps e1, swaps e2 and e3
    np.testing.assert_allclose(metrics.eigenspace_alignment(W_p, F), [1.0, 0.0, 0.0], atol=1e-12)
    assert metrics.mean_alignment(W_p, F) == pytest.approx(3.0 / 4.0)  # weights 3, 1, 0
    assert metrics.mean_alignment(W_p, np.zeros((3, 3))) == 0.0


def test_trajectory_of_an_aligning_predictor():
    traj = predictor_trajectory(*zip(*aligning_predictors(5)), steps=[0, 10, 20, 30, 40])
    assert len(traj) == 5 and traj.F_eigenvalues.shape == (5, 6)
    np.testing.assert_allclose(traj.F_eigenvalues[-1], F_EIGENVALUES)
    np.testing.assert_allclose(traj.W_p_eigenvalues[-1], P_EIGENVALUES)
    np.testing.assert_allclose(traj.alignment[-1], 1.0)
    assert traj.asymmetry[-1] == pytest.approx(0.0, abs=1e-12)
    assert traj.relative_commutator[-1] == pytest.approx(0.0, abs=1e-12)
    assert traj.asymmetry[0] > 1.0 and traj.mean_alignment[0] < 0.7
    assert v.symmetry_outcome(traj.asymmetry)[0] == v.HOLDS
    assert v.alignment_outcome(traj.mean_alignment)[0] == v.HOLDS


def test_trajectory_of_a_static_asymmetric_predictor_fails():
    traj = predictor_trajectory(*zip(*static_predictors(5)))
    assert v.symmetry_outcome(traj.asymmetry)[0] == v.FAILS
    assert v.alignment_outcome(traj.mean_alignment)[0] == v.FAILS


def test_trajectory_works_on_torch_tensors():
    U = basis()
    F = U @ np.diag(F_EIGENVALUES) @ U.T
    traj = predictor_trajectory([torch.tensor(F, dtype=torch.float32)], [torch.tensor(F)])
    np.testing.assert_allclose(traj.alignment[0], 1.0, atol=1e-5)


def test_trajectory_needs_pairs():
    with pytest.raises(ValueError, match="one F per W_p"):
        predictor_trajectory([np.eye(2)], [])
