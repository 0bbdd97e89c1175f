"""Verdict rules, the predictor trajectory and mean_alignment, on inputs whose answers are known."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from analysis import metrics, verdicts as v
from analysis.trajectory import predictor_trajectory
from analysis_fakes import (F_EIGENVALUES, P_EIGENVALUES, aligning_predictors, basis, static_predictors,
                            tail_unaligned_predictors)


@pytest.mark.parametrize("first, last, expected", [
    (1.4, 0.1, v.HOLDS),          # small and down more than 10×
    (1.4, 0.13, v.HOLDS),         # just over 10× down, small
    (1.4, 0.6, v.INCONCLUSIVE),   # more than halved, but neither small nor 10× down (the old rule said holds)
    (1.4, 0.15, v.INCONCLUSIVE),  # small, but only 9.3× down
    (1.4, 1.3, v.FAILS),          # fell by less than 10%
    (1.4, 1.6, v.FAILS),          # grew
    (0.05, 0.15, v.FAILS),        # grew, although small (the old rule said holds)
    (0.0, 0.0, v.HOLDS),          # symmetric throughout (a projected predictor)
    (1.0, 0.9, v.FAILS),          # fell by exactly 10%: "still ≥ 0.9 × the first" includes the boundary
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
    assert v.alignment_outcome([1.0], [0.0])[0] == v.INCONCLUSIVE


def test_alignment_outcome_needs_both_the_signal_alignment_and_the_commutator():
    assert v.alignment_outcome([0.3, 0.97], [0.4, 0.01])[0] == v.HOLDS     # misalignment 0.7 → 0.03, commutator 0.4 → 0.01
    assert v.alignment_outcome([0.3, 0.97], [0.4, 0.39])[0] == v.FAILS     # aligned, but the commutator stalled
    assert v.alignment_outcome([0.3, 0.32], [0.4, 0.01])[0] == v.FAILS     # commutator fell, alignment stalled
    assert v.alignment_outcome([0.3, 0.97], [0.4, 0.1])[0] == v.INCONCLUSIVE  # commutator 4× down: not enough
    # down more than 10× is not enough on its own: the last value must also be small in absolute terms
    assert v.alignment_outcome([0.3, 0.97], [1.4, 0.1])[0] == v.INCONCLUSIVE  # commutator 14× down, 0.1 > 0.05
    assert v.alignment_outcome([0.1, 0.92], [0.4, 0.01])[0] == v.INCONCLUSIVE  # misalignment 0.9 → 0.08 > 0.05
    _, evidence = v.alignment_outcome([0.3, 0.97], [0.4, 0.39])
    assert evidence["alignment_outcome"] == v.HOLDS and evidence["commutator_outcome"] == v.FAILS


@pytest.mark.parametrize("observed, located, expected", [
    (0.25 * 1.015, True, v.HOLDS), (0.25 * 0.985, True, v.HOLDS),
    (0.5, True, v.FAILS),            # a threshold placed at 2η*: the negative control
    (0.25 * 1.03, True, v.FAILS), (0.25 * 0.9, True, v.FAILS),
    (0.25, False, v.FAILS),          # outside the bracket: not located
])
def test_threshold_outcome(observed, located, expected):
    assert v.threshold_outcome(observed, 0.25, located) == expected


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
    assert traj.signal_alignment[-1] == pytest.approx(1.0)
    assert traj.asymmetry[-1] == pytest.approx(0.0, abs=1e-12)
    assert traj.relative_commutator[-1] == pytest.approx(0.0, abs=1e-12)
    assert traj.asymmetry[0] > 1.0 and traj.mean_alignment[0] < 0.7
    assert v.symmetry_outcome(traj.asymmetry)[0] == v.HOLDS
    assert v.alignment_outcome(traj.signal_alignment, traj.relative_commutator)[0] == v.HOLDS


def test_trajectory_of_a_static_asymmetric_predictor_fails():
    """Negative control of H3 and H4: a W_p that stays asymmetric and unaligned."""
    traj = predictor_trajectory(*zip(*static_predictors(5)))
    assert v.symmetry_outcome(traj.asymmetry)[0] == v.FAILS
    assert v.alignment_outcome(traj.signal_alignment, traj.relative_commutator)[0] == v.FAILS


def test_aligned_signal_with_an_unaligned_tail_is_not_alignment():
    """The top three directions of F end exactly aligned (columns of W_p clean) while W_p still maps the
    null directions onto them: the F-weighted and signal alignments reach 1, the commutator does not fall
    to 0, and H4 must not hold."""
    traj = predictor_trajectory(*zip(*tail_unaligned_predictors(5)))
    np.testing.assert_allclose(traj.alignment[-1, :3], 1.0)
    assert traj.signal_alignment[-1] == pytest.approx(1.0) and traj.mean_alignment[-1] == pytest.approx(1.0)
    W_p, F = tail_unaligned_predictors(5)[-1]
    by_hand = np.linalg.norm(F @ W_p - W_p @ F) / (np.linalg.norm(F) * np.linalg.norm(W_p))
    assert traj.relative_commutator[-1] == pytest.approx(by_hand) and by_hand > 0.1
    assert v.alignment_outcome(traj.signal_alignment, traj.relative_commutator)[0] != v.HOLDS


def test_signal_alignment_counts_directions_above_one_percent_unweighted():
    F = np.diag([100.0, 1.0, 0.5, 0.0])  # s_j ≥ 1 (1% of 100): the first two
    W_p = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1.0], [0, 0, 1.0, 0], [0, 1.0, 0, 0]])  # keeps e1, swaps e2 and e4
    traj = predictor_trajectory([W_p], [F])
    assert traj.signal_alignment[0] == pytest.approx(0.5)  # (1 + 0) / 2, unweighted
    assert traj.mean_alignment[0] == pytest.approx((100 + 0 + 0.5) / 101.5)  # F-weighted, for comparison


def test_trajectory_works_on_torch_tensors():
    U = basis()
    F = U @ np.diag(F_EIGENVALUES) @ U.T
    traj = predictor_trajectory([torch.tensor(F, dtype=torch.float32)], [torch.tensor(F)])
    np.testing.assert_allclose(traj.alignment[0], 1.0, atol=1e-5)


def test_trajectory_needs_pairs():
    with pytest.raises(ValueError, match="one F per W_p"):
        predictor_trajectory([np.eye(2)], [])


def test_complete_collapse_reads_the_effective_rank_only():
    """The collapse map's rule: a representation with a dominant mean direction (small std) that still
    spans several directions is not collapsed; one that spans a single direction is."""
    import math

    from analysis.verdicts import COLLAPSED, collapse_status, complete_collapse

    assert complete_collapse(1.0) and complete_collapse(1.99)
    assert not complete_collapse(2.0) and not complete_collapse(9.1) and not complete_collapse(math.nan)
    assert collapse_status(0.05, 9.1) == COLLAPSED and not complete_collapse(9.1)  # where the two rules part
