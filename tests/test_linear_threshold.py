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


def test_the_bracket_contains_eta_star_and_each_side_is_certified():
    """The fixed-τ bracket: not collapsed below η* by p₊'s trapping region, collapsed above it by the origin
    box (both theorems); the η's in between that reached neither within the horizon are the undecided
    band (the bottleneck next to the saddle-node), never a side (the old bracket's low end, 1.00024η*,
    was 'not collapsed' only because the horizon ran out)."""
    found = eigen_threshold(*_start(0.5, 1.0, 1.0), 1.0, 0.5, 1.0)
    row = found.as_dict()
    star = eta_critical(1.0, 0.5)
    assert found.status == LOCATED and found.eta_low < star < found.eta_high
    assert row["basis_low"] == row["basis_high"] == "theorem"
    assert found.eta_high / found.eta_low - 1 < 0.005  # the certificates reach within 0.5% of η* on both sides
    undecided = [o for o in found.observations if not o.decided]
    assert undecided and all(found.eta_low < o.eta < found.eta_high for o in undecided)


def _ema_field(_, y, alpha_p, eta, sigma2, beta):
    """Eqs. 11–13 with W_a's component a following Eq. 4 (s = w², τ = a/w), written out for scipy."""
    p, w, a = y
    k = 1 + sigma2
    return [alpha_p * w * (a - k * p * w) - eta * p, p * (a - k * p * w) - eta * w, beta * (w - a)]


def _radau_end(p0, s0, eta, beta, t_end, sigma2=0.5, alpha_p=1.0, tau=1.0):
    """(p, s) at t_end from scipy's Radau at rtol 1e-10: with beta=None τ stays fixed (a ≡ τw)."""
    from scipy.integrate import solve_ivp

    w0 = math.sqrt(s0)
    if beta is None:
        def field(t, y):
            return _ema_field(t, [y[0], y[1], tau * y[1]], alpha_p, eta, sigma2, 0.0)[:2]
        y0 = [p0, w0]
    else:
        def field(t, y):
            return _ema_field(t, y, alpha_p, eta, sigma2, beta)
        y0 = [p0, w0, tau * w0]
    sol = solve_ivp(field, (0, t_end), y0, method="Radau", rtol=1e-10, atol=1e-14)
    return sol.y[0, -1], sol.y[1, -1] ** 2


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_with_an_ema_target_the_threshold_is_eta_star_whatever_beta(beta):
    """H5 with EMA: at a fixed point ds/dt = 0, so dτ/dt = β(1 − τ) = 0 and τ = 1: η* = 1/(4k) does not depend
    on β. The start (0.1/k, 1/k²) climbs past the saddle for every η < η*; its bracket contains η*, both
    sides certified (the origin box; p₊'s Lyapunov ellipsoid). Radau agrees on each side of the bracket."""
    p0, s0 = _start(0.5, 1.0, 1.0)
    found = eigen_threshold(p0, s0, 1.0, 0.5, 1.0, beta=beta)
    row = found.as_dict()
    star = 1 / 6
    assert found.eta_critical == pytest.approx(star)
    assert found.status == LOCATED and found.eta_low < star < found.eta_high < 1.01 * star
    assert row["basis_low"] == row["basis_high"] == "theorem"
    assert v.threshold_outcome(found.eta_threshold_observed, star, True) == v.HOLDS
    p_low, s_low = _radau_end(p0, s0, 0.98 * star, beta, 3000 / beta)
    p_high, s_high = _radau_end(p0, s0, 1.02 * star, beta, 3000 / beta)
    assert s_low > 0.1 and s_high < 1e-6


def test_an_ema_start_below_the_parabola_has_a_threshold_that_moves_with_beta():
    """The control: from (0.5, 10⁻⁴) (c < 0) the threshold is far below η* and falls with a slower EMA (the
    basin moves with β, η* does not): fixed τ 0.398η*, β = 1 0.366η*, β = 0.1 below η*/3 (measured).
    H5's rule must fail there. Radau at η = 0.38η*: fixed τ survives, β = 1 collapses."""
    star = 1 / 6
    fixed = eigen_threshold(0.5, 1e-4, 1.0, 0.5, 1.0)
    slow = eigen_threshold(0.5, 1e-4, 1.0, 0.5, 1.0, beta=1.0)
    slower = eigen_threshold(0.5, 1e-4, 1.0, 0.5, 1.0, beta=0.1)
    assert slow.eta_high < fixed.eta_low < 0.45 * star and slower.status == BELOW
    for found in (fixed, slow, slower):
        assert v.threshold_outcome(found.eta_threshold_observed, star, found.status == LOCATED) == v.FAILS
    assert _radau_end(0.5, 1e-4, 0.38 * star, None, 5000)[1] > 0.1
    assert _radau_end(0.5, 1e-4, 0.38 * star, 1.0, 5000)[1] < 1e-8
