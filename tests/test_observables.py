"""analysis.observables: the sharpest collapse observable and its threshold, against hand computations,
and the covariance rank against constructions whose rank is known."""
import math

import numpy as np
import pytest

from analysis.metrics import covariance_rank
from analysis.observables import complete_collapse_at, sharpest, transition

WDS = [1e-3, 2e-3, 4e-3, 8e-3]


def _seeds(means, offsets=(-1.0, 0.0, 1.0)):
    """Three seeds at mean ± 1: each column's sample standard deviation is exactly 1."""
    return np.array([[m + o for m in means] for o in offsets])


def test_a_step_is_sharper_than_a_ramp_of_the_same_size_and_its_threshold_is_the_middle_of_the_step():
    step, ramp = _seeds([10, 10, 2, 2]), _seeds([10, 7.5, 5, 2.5])
    name, found = sharpest(WDS, {"step": step, "ramp": ramp})
    assert name == "step"
    assert found["step"]["sharpness"] == pytest.approx(8.0)  # |2 − 10| / 1
    assert found["ramp"]["sharpness"] == pytest.approx(2.5)
    assert found["step"]["threshold"] == pytest.approx(math.sqrt(2e-3 * 4e-3))
    assert found["step"]["fraction"] == pytest.approx(1.0)


def test_noisy_seeds_blunt_a_transition():
    quiet, noisy = _seeds([10, 10, 2, 2]), _seeds([10, 10, 2, 2], offsets=(-4.0, 0.0, 4.0))
    assert transition(WDS, noisy)["sharpness"] == pytest.approx(2.0)  # the same jump over a spread of 4
    assert sharpest(WDS, {"quiet": quiet, "noisy": noisy})[0] == "quiet"


def test_seeds_that_agree_exactly_are_floored_not_divided_by_zero():
    exact = np.array([[5, 5, 1, 1]] * 3, dtype=float)
    assert transition(WDS, exact)["sharpness"] == pytest.approx(4 / (1e-3 * 4))


def test_one_seed_gives_no_sharpness_so_no_observable_is_chosen():
    assert sharpest(WDS, {"rank": np.array([[10, 10, 2, 2.0]])})[0] is None


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        transition([1e-3, 1e-3, 2e-3, 4e-3], _seeds([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="one column"):
        transition(WDS, _seeds([1, 2, 3]))


def test_complete_collapse_needs_every_seed_at_rank_one_and_knn_at_chance():
    rank = np.array([[20, 3, 1.0, 1.0], [22, 1.0, 1.0, 1.0]])
    knn = np.array([[40, 30, 11, 10], [41, 12, 10, 10]])
    assert complete_collapse_at(WDS, rank, knn, num_classes=10) == 4e-3  # seed 0 still at rank 3 at 2e-3
    assert math.isnan(complete_collapse_at(WDS, rank, knn + 20, num_classes=10))  # kNN above chance: not complete
    missing = rank.copy()
    missing[1, 2] = np.nan  # a diverged seed at 4e-3: not every seed seen there
    assert complete_collapse_at(WDS, missing, knn, num_classes=10) == 8e-3


def test_covariance_rank_counts_the_directions_the_outputs_spread_over():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    for k in (1, 3, 8):
        Z = 3.0 * rng.normal(size=(400, k)) @ basis[:, :k].T  # unit vectors on a sphere inside k dimensions
        assert covariance_rank(Z) == k
        assert covariance_rank(Z + 1e-3 * rng.normal(size=Z.shape)) == k  # noise below the floors does not count
    collapsed = np.ones((100, 32)) + 1e-5 * rng.normal(size=(100, 32))
    assert covariance_rank(collapsed) == 0  # one point up to noise
    with pytest.raises(ValueError, match="rel_floor"):
        covariance_rank(collapsed, rel_floor=2.0)
