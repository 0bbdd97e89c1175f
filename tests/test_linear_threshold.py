"""H5's located collapse thresholds (linear_dynamics.threshold): the bisection, the η*-blind observer,
and negative controls where the located threshold must disagree with the prediction."""
import math

import numpy as np
import pytest

from analysis import verdicts as v
from linear_dynamics.fixed_points import eta_critical
from linear_dynamics.params import LinearConfig
from linear_dynamics.threshold import (ABOVE, BAND_TOL, BELOW, LOCATED, UNRESOLVED, Observation, bisect_threshold,
                                       eigen_collapse, eigen_threshold, matrix_threshold)


def _step(at: float):
    """An oracle that collapses exactly from η = at on: the threshold is known independently."""
    return lambda eta: Observation(eta, eta >= at, 0.0, "step", "theorem")


def _step_with_band(low: float, high: float):
    """Certified not collapsed below `low`, certified collapsed from `high` on, undecided between."""
    def observe(eta):
        if low <= eta < high:
            return Observation(eta, False, 0.0, "horizon", None)
        return Observation(eta, eta >= high, 0.0, "step", "theorem")
    return observe


def test_undecided_observations_never_move_a_side_of_the_bracket():
    """A band of undecided η (the horizon ran out) around the switch: the bracket's sides are certified
    observations only, so it contains the whole band, and the band's edges are resolved to BAND_TOL."""
    found = bisect_threshold(_step_with_band(0.098, 0.1005), 0.1, 0.1 / 3, 0.2)
    assert found.status == LOCATED and found.eta_low < 0.098 and found.eta_high >= 0.1005
    assert found.eta_low >= 0.098 / (1 + BAND_TOL) and found.eta_high <= 0.1005 * (1 + BAND_TOL)
    row = found.as_dict()
    assert row["basis_low"] == row["basis_high"] == "theorem"
    band = row["undecided_band"]
    assert 0.098 <= band[0] <= band[1] < 0.1005 and row["undecided_width"] == pytest.approx(band[1] / band[0] - 1)
    # The old rule counted the horizon as "not collapsed": its bracket would have sat above the band.
    assert not any(o.decided for o in found.observations if 0.098 <= o.eta < 0.1005)


def test_an_undecided_end_of_the_bracket_is_reported_as_unresolved():
    found = bisect_threshold(_step_with_band(0.01, 0.3), 0.1, 0.1 / 3, 0.2)
    assert found.status == UNRESOLVED and found.eta_threshold_observed is None
    assert v.threshold_outcome(found.eta_threshold_observed, 0.1, False) == v.FAILS


@pytest.mark.parametrize("at", [0.05, 0.1234, 0.19])
def test_bisection_locates_a_known_step_to_one_percent(at):
    found = bisect_threshold(_step(at), 0.1, 0.1 / 3, 0.2)
    assert found.status == LOCATED and found.eta_low < at <= found.eta_high
    assert found.eta_high / found.eta_low <= 1.01
    assert found.eta_threshold_observed == pytest.approx(at, rel=0.005)


def test_a_threshold_placed_at_twice_eta_star_fails():
    """The negative control of H5: dynamics whose collapse starts at 2η* must give 'fails'."""
    star = 0.1
    found = bisect_threshold(_step(2 * star * 0.999), star, star / 3, 2 * star)
    assert found.status == LOCATED
    assert v.threshold_outcome(found.eta_threshold_observed, star, True) == v.FAILS
    beyond = bisect_threshold(_step(2.5 * star), star, star / 3, 2 * star)  # outside the bracket
    assert beyond.status == ABOVE and beyond.eta_threshold_observed == 2 * star
    assert v.threshold_outcome(beyond.eta_threshold_observed, star, beyond.status == LOCATED) == v.FAILS
    always = bisect_threshold(_step(0.0), star, star / 3, 2 * star)
    assert always.status == BELOW and v.threshold_outcome(always.eta_threshold_observed, star, False) == v.FAILS


def _start(sigma2, tau, alpha_p):
    k = 1 + sigma2
    return 0.1 * tau / k, (tau / k) ** 2 / alpha_p


@pytest.mark.parametrize("sigma2, tau, alpha_p", [(0.5, 1.0, 1.0), (1.0, 0.5, 3.0)])
def test_eigen_threshold_is_eta_star(sigma2, tau, alpha_p):
    found = eigen_threshold(*_start(sigma2, tau, alpha_p), alpha_p, sigma2, tau)
    star = eta_critical(tau, sigma2)
    assert found.status == LOCATED and found.eta_low < star * 1.01 and found.eta_high > star * 0.99
    assert v.threshold_outcome(found.eta_threshold_observed, star, True) == v.HOLDS


def test_the_observer_waits_for_the_trajectory_above_eta_star():
    """Above η* collapse is certain (d ln s/dt ≤ 2(η* − η)), but the observer does not use that: it sees
    collapse only once the mode is in the origin box, after the bottleneck passage past the ghost of
    p± (about π/(η*√δ) at η = (1+δ)η*), and sees none just below η*."""
    star = eta_critical(1.0, 0.5)
    p0, s0 = _start(0.5, 1.0, 1.0)
    seen = [eigen_collapse(p0, s0, 1.0, (1 + delta) * star, 0.5, 1.0) for delta in (0.2, 0.02)]
    assert all(o.collapsed for o in seen)
    assert seen[1].t > seen[0].t > math.pi / (star * math.sqrt(0.2)) / 2
    assert not eigen_collapse(p0, s0, 1.0, 0.98 * star, 0.5, 1.0).collapsed


def test_a_wrong_prediction_fails():
    """The same dynamics at τ = 1.3 (threshold η*(1.3) = 1.69 η*(1)) judged against η* at τ = 1."""
    p0, s0 = _start(0.5, 1.3, 1.0)
    star = eta_critical(1.0, 0.5)
    found = bisect_threshold(lambda eta: eigen_collapse(p0, s0, 1.0, eta, 0.5, 1.3), star, star / 3, 2 * star)
    assert found.status == LOCATED
    assert found.eta_threshold_observed == pytest.approx(1.69 * star, rel=0.01)
    assert v.threshold_outcome(found.eta_threshold_observed, star, True) == v.FAILS


def test_a_start_outside_p_plus_basin_collapses_below_eta_star():
    """A start with too little signal (s0 = 10⁻⁴ of the default: below the parabola, c < 0) is not in p₊'s
    basin for every η < η*: its threshold is far below η*, and H5's rule says so (a real negative control)."""
    p0, s0 = _start(0.5, 1.0, 1.0)
    star = eta_critical(1.0, 0.5)
    found = eigen_threshold(p0, 1e-4 * s0, 1.0, 0.5, 1.0)
    assert found.eta_threshold_observed < 0.9 * star
    assert v.threshold_outcome(found.eta_threshold_observed, star, found.status == LOCATED) == v.FAILS
    assert 1e-4 * s0 < p0**2  # c < 0


def test_matrix_threshold_is_eta_star():
    found = matrix_threshold(LinearConfig(t_end=30.0))
    assert found.status == LOCATED and found.eta_critical == pytest.approx(1 / 6)
    assert v.threshold_outcome(found.eta_threshold_observed, found.eta_critical, True) == v.HOLDS
    below = [o for o in found.observations if not o.collapsed]
    assert below and all(o.eta < 1 / 6 * 1.01 for o in below)
    assert np.all([o.eta > 1 / 6 for o in found.observations if o.collapsed])
