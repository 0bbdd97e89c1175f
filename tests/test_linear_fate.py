"""Verdicts report each mode's fate (linear_dynamics.fate), whatever t_end is."""
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy.integrate import solve_ivp

from linear_dynamics import fate as fate_module
from linear_dynamics.eigen_ode import eigen_rhs, integrate_eigen, log_s_rhs
from linear_dynamics.ema_lyapunov import ema_plus_region
from linear_dynamics.fate import check_times, fate_time_scale, origin_box
from linear_dynamics.fixed_points import collapses_closed_form, eta_critical, p_roots
from linear_dynamics.params import EigenParams

# η as a fraction of η*, in the moderate or the too-large regime but away from η = η*, where the merged
# point is not stable and modes heading there are rightly undecided (tested on its own below).
eta_fractions = st.one_of(st.floats(0.05, 0.9), st.floats(1.1, 2.0))


def test_slow_collapse_below_the_saddle_is_collapsed_before_s_is_small():
    """η = 0.01: below the parabola with p0 < p₋ ≈ 0.0101 the mode is doomed from t = 0, although
    s(100) = 5.6e-6 is still far from 0 (the old snapshot rule said 'non-collapsed')."""
    traj = integrate_eigen(0.005, 2e-5, EigenParams(1.0, 0.01, 0.0, tau=1.0), 100.0, n_save=2)
    assert traj.s[-1, 0] > 1e-6
    assert traj.verdicts == ("collapsed",) and traj.fixed_point == ("collapse",) and traj.t_decided[0] == 0.0


def test_just_above_the_saddle_on_the_parabola_is_non_collapsed():
    """On the parabola c = 0, and p > p₋ holds p above p₋ for good: certain from t = 0."""
    p_minus, p_plus = p_roots(0.01)
    p0 = 1.01 * p_minus
    traj = integrate_eigen(p0, p0**2, EigenParams(1.0, 0.01, 0.0, tau=1.0), 100.0, n_save=2)
    assert abs(traj.p[-1, 0] - p_plus) > 0.9 * p_plus  # still next to the saddle at t_end
    assert traj.verdicts == ("non-collapsed",) and traj.fixed_point == ("p+",) and traj.t_decided[0] == 0.0


def test_modes_next_to_the_separatrix_are_decided_by_integrating_past_t_end():
    """Off the parabola near the saddle: undecided at t_end = 100, decided later, and right (t = 5000)."""
    p_minus = p_roots(0.01)[0]
    p0, s0 = [1.5 * p_minus, 0.5 * p_minus], [0.3 * (1.5 * p_minus) ** 2, 1.5 * p_minus**2]
    params = EigenParams(1.0, 0.01, 0.0, tau=1.0)
    traj = integrate_eigen(p0, s0, params, 100.0, n_save=2)
    assert traj.verdicts == ("non-collapsed", "collapsed") and np.all(traj.t_decided > 100.0)
    end = integrate_eigen(p0, s0, params, 5000.0, n_save=2)
    assert end.p[-1, 0] == pytest.approx(p_roots(0.01)[1]) and end.s[-1, 1] < 1e-12


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 5.0), st.floats(0.02, 0.95), st.floats(0.0, 1.5), st.floats(0.3, 2.0),
       st.floats(-1.0, 3.0), st.floats(0.01, 5.0))
def test_on_the_parabola_the_verdict_is_the_closed_form_even_with_a_short_horizon(
        alpha_p, fraction, sigma2, tau, position, t_end):
    """0 < η < η*, s0 = p0²/α_p: collapsed iff p0 < p₋ (a thin band around p₋ left out)."""
    eta = fraction * eta_critical(tau, sigma2)
    p_minus, p_plus = p_roots(eta, tau, sigma2)
    p0 = position * p_plus
    assume(abs(p0 - p_minus) > 1e-3 * p_minus)
    traj = integrate_eigen(p0, p0**2 / alpha_p, EigenParams(alpha_p, eta, sigma2, tau=tau), t_end, n_save=2)
    expected = collapses_closed_form(p0, p0**2 / alpha_p, alpha_p, eta, sigma2, tau)
    assert traj.verdicts == ("collapsed" if expected else "non-collapsed",)
    assert traj.fixed_point == ("collapse" if expected else "p+",)


def _far_future(p0, s0, params, tau0=None):
    """States after 200 time scales: long enough for every decided mode to sit at its attractor."""
    return integrate_eigen(p0, s0, params, 200 * fate_time_scale(params), tau0=tau0, n_save=2, rtol=1e-9)


@settings(max_examples=10, deadline=None)
@given(st.floats(0.3, 3.0), eta_fractions, st.floats(0.0, 1.0), st.floats(0.5, 1.5), st.integers(0, 2**31 - 1))
def test_fates_are_where_the_modes_end_up_fixed_tau(alpha_p, fraction, sigma2, tau, seed):
    """Random states, short horizon: every mode's verdict and fixed point match where it really goes,
    and neither depends on t_end (nor on how many times were saved)."""
    eta = fraction * eta_critical(tau, sigma2)
    params = EigenParams(alpha_p, eta, sigma2, tau=tau)
    rng = np.random.default_rng(seed)
    p0, s0 = rng.uniform(-1, 2, 60) * tau, rng.uniform(0, 2, 60) * tau**2 / alpha_p
    short = integrate_eigen(p0, s0, params, 1.0, n_save=2)
    assert short.verdicts == integrate_eigen(p0, s0, params, 30.0, n_save=31).verdicts
    assert "undecided" not in short.verdicts
    assert set(short.basis) == {"theorem"}  # every fixed-τ region is exact
    end = _far_future(p0, s0, params)
    np.testing.assert_array_equal(short.collapsed, end.s[-1] < 1e-8)
    for name, p in zip(short.fixed_point, end.p[-1]):
        assert p == pytest.approx(0.0 if name == "collapse" else p_roots(eta, tau, sigma2)[1], abs=1e-4)


@settings(max_examples=8, deadline=None)
@given(st.floats(0.3, 3.0), eta_fractions, st.floats(0.0, 1.0), st.floats(0.1, 5.0), st.integers(0, 2**31 - 1))
def test_fates_are_where_the_modes_end_up_with_ema(alpha_p, fraction, sigma2, beta, seed):
    """The same with an EMA target (τ from τ0 by Eq. 13; fixed points at τ = 1)."""
    eta = fraction * eta_critical(1.0, sigma2)
    params = EigenParams(alpha_p, eta, sigma2, beta=beta)
    rng = np.random.default_rng(seed)
    p0, s0, tau0 = rng.uniform(-1, 2, 40), rng.uniform(0.01, 2, 40) / alpha_p, rng.uniform(0, 2, 40)
    short = integrate_eigen(p0, s0, params, 1.0, tau0=tau0, n_save=2)
    end = _far_future(p0, s0, params, tau0)
    decided = np.array([v != "undecided" for v in short.verdicts])
    assert decided.mean() > 0.9
    np.testing.assert_array_equal(short.collapsed[decided], end.s[-1, decided] < 1e-8)
    for name, basis in zip(short.fixed_point, short.basis):
        assert basis == {"p+": "theorem", "collapse": "theorem", None: None}[name]  # the Lyapunov ellipsoid; exact boxes
    for name, p, tau in zip(np.array(short.fixed_point)[decided], end.p[-1, decided], end.tau[-1, decided]):
        if name == "p+":
            assert p == pytest.approx(p_roots(eta, 1.0, sigma2)[1], abs=1e-4) and tau == pytest.approx(1.0, abs=1e-4)
        else:
            assert name == "collapse" and abs(p) < 1e-4


def test_ema_without_weight_decay():
    """η = 0 with EMA: c = s − p²/α_p is conserved for any τ(t). c > 0: non-collapsed at once; c < 0 with
    p < 0, or with √(−α_p c) ≥ 1/k: collapsed at once; otherwise the mode is integrated until it is next
    to the line p = 1/k, τ = 1 (here from τ0 = 0.2, which first drags p down towards √(−α_p c))."""
    params = EigenParams(1.0, 0.0, 0.25, beta=0.5)  # 1/k = 0.8
    p0, s0, tau0 = [0.3, -0.9, 1.2, 0.7], [0.2, 0.5, 0.1, 0.4], [1.0, 1.0, 1.0, 0.2]
    traj = integrate_eigen(p0, s0, params, 1.0, tau0=tau0, n_save=2)
    assert traj.verdicts == ("non-collapsed", "collapsed", "collapsed", "non-collapsed")
    assert traj.fixed_point == ("non-collapsed", "collapse", "collapse", "non-collapsed")
    assert list(traj.t_decided[:3]) == [0, 0, 0] and traj.t_decided[3] > 1.0
    end = integrate_eigen(p0, s0, params, 3000.0, tau0=tau0, n_save=2)
    np.testing.assert_allclose(end.p[-1, [0, 3]], 0.8, atol=1e-6)
    np.testing.assert_allclose(end.tau[-1, [0, 3]], 1.0, atol=1e-6)
    assert np.all(end.s[-1, 1:3] < 1e-12)


def test_without_weight_decay_the_conserved_offset_decides_at_once():
    """η = 0, fixed τ: the closed form (Eq. 14's c) is the verdict from t = 0. s0 = 1e-8 at p0 = 0.5 sits
    on the repelling part of the line s = 0 and is a slow start, not a collapse."""
    rng = np.random.default_rng(2)
    p0, s0 = np.append(rng.uniform(-1.5, 2.5, 300), 0.5), np.append(rng.uniform(0, 2, 300), 1e-8)
    traj = integrate_eigen(p0, s0, EigenParams(0.8, 0.0, 0.25, tau=1.0), 2.0, n_save=2)
    np.testing.assert_array_equal(traj.collapsed, collapses_closed_form(p0, s0, 0.8, 0.0, 0.25, 1.0))
    assert traj.verdicts[-1] == "non-collapsed" and traj.s[-1, -1] < 1e-6
    assert set(traj.fixed_point) == {"collapse", "non-collapsed"} and np.all(traj.t_decided == 0)


def test_a_mode_heading_for_the_merged_point_at_eta_star_is_undecided():
    """At η = η* p₋ = p₊ is a saddle-node (a zero Jacobian eigenvalue, not stable): a mode above it creeps
    towards it like 1/t and is never inside a stable point's region; one below collapses."""
    traj = integrate_eigen([0.8, 0.3], [0.64, 0.09], EigenParams(1.0, 0.25, 0.0, tau=1.0), 5.0, n_save=2)
    assert traj.verdicts == ("undecided", "collapsed") and traj.fixed_point == (None, "collapse")
    assert np.isnan(traj.t_decided[0]) and traj.t_decided[1] >= 0


def test_t_decided_is_when_the_mode_entered_its_region():
    """Saved times resolve t_decided: a longer t_end finds the same times, a coarser save grid times no
    earlier and at most one save interval later, and a restart from the state at t_decided is decided
    at once, with the same verdict."""
    params = EigenParams(1.0, 0.05, 0.0, tau=1.0)
    p_minus = p_roots(0.05)[0]
    p0 = np.array([1.5, 0.5, 0.2]) * p_minus
    s0 = np.array([0.3 * 1.5**2, 1.5, 2.5]) * p_minus**2
    fine = integrate_eigen(p0, s0, params, 400.0, n_save=401)
    assert fine.verdicts == ("non-collapsed", "collapsed", "non-collapsed")
    assert np.all((fine.t_decided > 0) & (fine.t_decided < 400))
    longer = integrate_eigen(p0, s0, params, 800.0, n_save=801)
    np.testing.assert_allclose(longer.t_decided, fine.t_decided)
    coarse = integrate_eigen(p0, s0, params, 400.0, n_save=5)
    assert np.all(coarse.t_decided >= fine.t_decided) and np.all(coarse.t_decided - fine.t_decided <= 100)
    at = np.searchsorted(fine.t, fine.t_decided)
    restart = integrate_eigen(fine.p[at, [0, 1, 2]], fine.s[at, [0, 1, 2]], params, 1.0, n_save=2)
    assert restart.verdicts == fine.verdicts and np.all(restart.t_decided == 0)


def test_time_scale_is_the_slowest_stable_rate():
    assert fate_time_scale(EigenParams(1.0, 0.01, 0.0, tau=1.0)) == pytest.approx(100.0)  # the origin's −η
    assert fate_time_scale(EigenParams(1.0, 0.01, 0.0, beta=100.0)) == pytest.approx(100.0)
    assert fate_time_scale(EigenParams(1.0, 0.01, 0.0, beta=0.001)) > 1000.0  # a slow EMA is slower than 1/β at p₊
    with pytest.raises(ValueError, match="eta"):
        fate_time_scale(EigenParams(1.0, 0.0, 0.0, tau=1.0))


def test_a_tiny_weight_decay_does_not_push_the_first_check_out_of_reach():
    """η = 1e-6: the slow scale 1/η is 10⁶, but the checks past t_end start at a tenth of the fast scale
    (≈ 1 at p₊) and grow by 10%: a mode that crosses the saddle p₋ ≈ 1e-6 just after t_end is decided
    at once. Reference: LSODA at rtol 1e-12 to t = 1000 puts it at p ≈ p₊ ≈ 1 with s far from 0."""
    params = EigenParams(1.0, 1e-6, 0.0, tau=1.0)
    checks = check_times(1e-4, params)
    assert checks[0] - 1e-4 == pytest.approx(0.1 / max(1 - 2e-6, 2e-6), rel=1e-3)
    traj = integrate_eigen(1e-7, 1e-3, params, 1e-4, n_save=2)
    assert traj.p[-1, 0] < p_roots(1e-6)[0]  # still below the saddle at t_end
    assert traj.verdicts == ("non-collapsed",) and traj.fixed_point == ("p+",) and traj.t_decided[0] < 1.0
    reference = solve_ivp(lambda _, y: eigen_rhs(np.reshape(y, (2, 1)), params)[:, 0], (0, 1000.0), [1e-7, 1e-3],
                          method="LSODA", rtol=1e-12, atol=1e-16).y[:, -1]
    assert reference[0] == pytest.approx(p_roots(1e-6)[1], abs=1e-4) and reference[1] > 0.5


def test_a_stiff_ema_mode_is_integrated_implicitly_and_matches_lsoda():
    """α_p = 1e5 with an EMA target: the (p, w, a) system is stiff; the answer comes in seconds and
    agrees with LSODA on Eqs. 11–13 as written (p ≥ 0 keeps Eq. 13 regular)."""
    params = EigenParams(1e5, 0.01, 0.0, beta=1.0)
    start = time.perf_counter()
    traj = integrate_eigen(0.0, 1.0, params, 50.0, tau0=1.0, n_save=2)
    assert time.perf_counter() - start < 20
    reference = solve_ivp(lambda _, y: eigen_rhs(np.reshape(y, (3, 1)), params)[:, 0], (0, 50.0), [0.0, 1.0, 1.0],
                          method="LSODA", rtol=1e-12, atol=1e-14).y[:, -1]
    np.testing.assert_allclose([traj.p[-1, 0], traj.s[-1, 0], traj.tau[-1, 0]], reference, rtol=1e-7)
    assert traj.verdicts == ("non-collapsed",)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.1, 10.0), st.floats(1e-3, 1.0), st.floats(0.0, 1.0), st.floats(0.2, 3.0), st.floats(-1, 1),
       st.floats(0, 1))
def test_origin_box_traps_and_shrinks_s(alpha_p, eta, sigma2, tau, where_p, where_s):
    """Inside the box d ln s/dt ≤ −η; on its faces p = ±a the velocity points inwards (Eqs. 11–12)."""
    params = EigenParams(alpha_p, eta, sigma2, tau=tau)
    a, b = origin_box(params)
    p, s = where_p * a, where_s * b
    dp, dlog_s = log_s_rhs(np.array([[p, a, -a], [np.log(max(s, 1e-300))] * 3]), params)
    assert dlog_s[0] <= -eta * (1 - 1e-9)
    assert dp[1] < 0 < dp[2]


def _ema_field(_, y, alpha_p, eta, sigma2, beta):
    """Eqs. 11–13 with W_a's component a following Eq. 4 (s = w², τ = a/w), written out for scipy."""
    p, w, a = y
    k = 1 + sigma2
    return [alpha_p * w * (a - k * p * w) - eta * p, p * (a - k * p * w) - eta * w, beta * (w - a)]


def _radau(p0, s0, tau0, params, t_end):
    """(p, s, τ) at t_end from scipy's Radau at rtol 1e-11, independent of the project's solver."""
    w0 = np.sqrt(s0)
    sol = solve_ivp(_ema_field, (0, t_end), [p0, w0, tau0 * w0], method="Radau", rtol=1e-11, atol=1e-14,
                    args=(params.alpha_p, params.eta, params.sigma2, params.beta))
    assert sol.success
    p, w, a = sol.y[:, -1]
    return p, w * w, a / w


@pytest.mark.parametrize("alpha_p, eta, beta, p0, s0, t_ends, verdict", [
    (1.0, 0.1, 1.0, 1e3, 1.0, (0.01, 10.0, 30.0, 100.0), "collapsed"),
    (1e5, 0.01, 0.01, 0.0, 1.0, (0.01, 100.0, 1000.0), "non-collapsed"),
])
def test_stiff_ema_modes_get_the_same_verdict_at_every_t_end(alpha_p, eta, beta, p0, s0, t_ends, verdict):
    """Stiff EMA modes (w slaved to a/(kp) at rate kp² ~ 10⁵ → 10²; α_p = 10⁵): the continuation past t_end
    goes to Radau too, so the verdict does not depend on t_end (it was 'undecided' at 10 and 100; at 30 until
    the stiffness test went below h|λ| = 1). Radau on the field written out here: s → 0 for the first,
    (p, τ) → (p₊, 1) for the second."""
    params = EigenParams(alpha_p, eta, 0.0, beta=beta)
    for t_end in t_ends:
        start = time.perf_counter()
        traj = integrate_eigen(p0, s0, params, t_end, n_save=2)
        assert time.perf_counter() - start < 30
        assert traj.verdicts == (verdict,) and traj.basis == ("theorem",)
    p, s, tau = _radau(p0, s0, 1.0, params, 1e4)
    if verdict == "collapsed":
        assert s < 1e-40
    else:
        assert p == pytest.approx(p_roots(eta)[1], rel=1e-8) and tau == pytest.approx(1.0, abs=1e-8)


def _dV_dt(region, v, params):
    """dV/dt of V = vᵀSv along the field written out here, at states (p, w, a) = p₊-point + v scaled back."""
    P, root = region.p_plus, np.sqrt(params.alpha_p)
    p, w, a = P + v[0], (P + v[1]) / root, (P + v[2]) / root
    dp, dw, da = np.array(_ema_field(0.0, (p, w, a), params.alpha_p, params.eta, params.sigma2, params.beta))
    return 2 * np.einsum("in,ij,jn->n", v, region.S, np.stack([dp, root * dw, root * da]))


@pytest.mark.parametrize("eta, sigma2, beta", [(0.02, 0.5, 0.5), (0.05, 0.2, 0.1), (0.2, 0.0, 2.0), (0.16, 0.5, 0.01)])
def test_the_ema_plus_region_is_a_trapping_region(eta, sigma2, beta):
    """The proved ellipsoid around p₊ (`ema_lyapunov`): V decreases along the field (written out here) at
    10⁵ random states on its boundary and inside, and Radau from boundary states ends at p₊ with τ = 1."""
    params = EigenParams(2.5, eta, sigma2, beta=beta)
    region = ema_plus_region(eta, sigma2, beta)
    assert region is not None
    rng = np.random.default_rng(0)
    e = rng.normal(size=(3, 100_000))
    e /= np.sqrt(np.einsum("in,ij,jn->n", e, region.S, e))  # on V = 1
    v = e * region.radius * np.where(np.arange(e.shape[1]) % 2, 1.0, rng.uniform(1e-3, 1, e.shape[1]))
    assert np.all(_dV_dt(region, v, params) < 0)
    p_plus = p_roots(eta, 1.0, sigma2)[1]
    for column in range(3):
        P, root = region.p_plus, np.sqrt(params.alpha_p)
        p0, w0, a0 = P + v[0, 2 * column + 1], (P + v[1, 2 * column + 1]) / root, (P + v[2, 2 * column + 1]) / root
        p, s, tau = _radau(p0, w0**2, a0 / w0, params, 60 * fate_time_scale(params))
        assert p == pytest.approx(p_plus, abs=1e-6) and tau == pytest.approx(1.0, abs=1e-6)


def test_the_proved_region_shrinks_to_nothing_at_the_saddle_node():
    """The region adapts to the gap p₊ − p₋: its size falls as η → η* and it does not exist at or past η*."""
    radii = [ema_plus_region(f / 6, 0.5, 0.5).radius for f in (0.5, 0.9, 0.99, 0.999)]
    assert all(b < a for a, b in zip(radii, radii[1:]))
    assert ema_plus_region(1 / 6, 0.5, 0.5) is None and ema_plus_region(0.2, 0.5, 0.5) is None


def test_widening_the_proved_region_would_call_a_collapsing_start_p_plus(monkeypatch):
    """Negative control. η = 0.24 (η* = 0.25), β = 0.05: the start 1% past the saddle on the segment from
    p₊ to p₋ (τ = 1) collapses (Radau: s < 10⁻⁶⁰ by t = 2·10⁴) and is called collapsed at t_end = 0.001.
    It lies ~10 radii from p₊ in V's norm: a region 30× wider calls it p₊."""
    params = EigenParams(1.0, 0.24, 0.0, beta=0.05)
    p_minus, p_plus = p_roots(0.24)
    p0 = p_plus + 1.01 * (p_minus - p_plus)
    assert _radau(p0, p0**2, 1.0, params, 2e4)[1] < 1e-60
    assert integrate_eigen(p0, p0**2, params, 0.001, n_save=2).verdicts == ("collapsed",)
    proved = ema_plus_region(0.24, 0.0, 0.05)
    wider = replace(proved, radius=30 * proved.radius)
    monkeypatch.setattr(fate_module, "ema_plus_region", lambda *args: wider)
    assert integrate_eigen(p0, p0**2, params, 0.001, n_save=2).verdicts == ("non-collapsed",)


@pytest.mark.slow
def test_a_lagging_target_next_to_the_saddle_node_is_not_called_p_plus():
    """The issue's case: η = 0.2499975 (η* − 10⁻⁵η*), β = 10⁻⁴, τ0 = 0.99001, (p, s) at p₊. The old 1% τ
    allowance said 'non-collapsed (numerical)' at t_end = 0.001; the target lags below τ²/(4k) = η for
    ~1/β and the mode collapses (Radau: s < 10⁻²⁰ by t = 10⁷)."""
    params = EigenParams(1.0, 0.2499975, 0.0, beta=1e-4)
    p0, s0, tau0 = 0.5015811388300806, 0.25158363883008056, 0.99001
    assert ema_plus_region(0.2499975, 0.0, 1e-4) is None  # no proved region this close to η*
    assert integrate_eigen(p0, s0, params, 0.001, tau0=tau0, n_save=2).verdicts == ("collapsed",)
    assert _radau(p0, s0, tau0, params, 1e7)[1] < 1e-20
