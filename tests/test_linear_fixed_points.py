"""Closed forms of the fixed points (Eqs. 11–12) against sympy's solve and numerical root finding."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st
from scipy.optimize import root

from linear_dynamics.eigen_ode import eigen_rhs, ema_mode_rhs, integrate_eigen
from linear_dynamics.fixed_points import (collapses_closed_form, ema_jacobian, eta_critical, fixed_points, jacobian,
                                          p_roots, parabola_velocity, regime)
from linear_dynamics.params import EigenParams

alpha_ps = st.floats(0.05, 10.0)
taus = st.floats(0.1, 3.0)
sigma2s = st.floats(0.0, 2.0)
fractions = st.floats(0.02, 0.98)  # η as a fraction of η*


@pytest.fixture(scope="module")
def sympy_solution():
    """Fixed points and Jacobian eigenvalues from sympy, as numeric functions of (α_p, η, k, τ)."""
    p, s = sp.symbols("p s", real=True)
    a, e, k, t = sp.symbols("alpha eta k tau", positive=True)
    f = a * s * (t - k * p) - e * p
    g = 2 * p * s * (t - k * p) - 2 * e * s
    solutions = sp.solve([f, g], [p, s], dict=True)
    jac = sp.Matrix([f, g]).jacobian([p, s])
    points = [sp.lambdify((a, e, k, t), (sol[p], sol[s])) for sol in solutions]
    eigen = [sp.lambdify((a, e, k, t), list(jac.subs(sol).eigenvals(multiple=True))) for sol in solutions]
    return points, eigen


def _rhs(y, alpha_p, eta, sigma2, tau):
    return eigen_rhs(np.asarray(y, dtype=float).reshape(2, -1), EigenParams(alpha_p, eta, sigma2, tau=tau)).ravel()


@settings(max_examples=40, deadline=None)
@given(alpha_ps, fractions, sigma2s, taus)
def test_fixed_points_match_sympy_solve(sympy_solution, alpha_p, fraction, sigma2, tau):
    eta = fraction * eta_critical(tau, sigma2)
    points, eigen = sympy_solution
    args = (alpha_p, eta, 1 + sigma2, tau)
    theirs = []
    for point, values in zip(points, eigen):
        p, s = (complex(v) for v in point(*args))
        values = [complex(v) for v in values(*args)]
        assert max(abs(p.imag), abs(s.imag), *(abs(v.imag) for v in values)) < 1e-9  # real below η*
        theirs.append((p.real, s.real, sorted(v.real for v in values)))
    ours = [(fp.p, fp.s, list(fp.eigenvalues)) for fp in fixed_points(alpha_p, eta, sigma2, tau).fixed_points]
    assert len(ours) == len(theirs) == 3
    for (p, s, values), (p_ref, s_ref, values_ref) in zip(sorted(ours), sorted(theirs)):
        assert p == pytest.approx(p_ref, rel=1e-7, abs=1e-10)
        assert s == pytest.approx(s_ref, rel=1e-7, abs=1e-10)
        np.testing.assert_allclose(values, values_ref, rtol=1e-7, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(alpha_ps, st.floats(0.02, 3.0), sigma2s, taus)
def test_fixed_points_match_numerical_root_finding(alpha_p, fraction, sigma2, tau):
    """Every root scipy finds from a grid of starts is one of ours, and each of ours is found. Besides
    the grid, starts on the parabola s = p²/α_p (where s ≠ 0 puts the roots, from ds/dt = dp/dt = 0),
    evenly and geometrically spaced, keep a saddle between grid nodes or next to the origin from being
    missed; Newton still has to find p itself."""
    eta = fraction * eta_critical(tau, sigma2)
    ours = fixed_points(alpha_p, eta, sigma2, tau).fixed_points
    scale_p, scale_s = tau / (1 + sigma2), (tau / (1 + sigma2)) ** 2 / alpha_p
    grid_p = np.linspace(-0.5, 1.5, 9) * scale_p
    starts = [(p0, s0) for p0 in grid_p for s0 in np.linspace(0, 1.5, 7) * scale_s]
    starts += [(p0, p0**2 / alpha_p) for p0 in grid_p + scale_p / 8]
    # p₋ → 0 as η → 0 (it sits ~η-close to the collapse point): geometric starts on the parabola reach it
    starts += [(p0, p0**2 / alpha_p) for p0 in scale_p * np.logspace(-6, -1, 11)]
    found = []
    for start in starts:
        sol = root(_rhs, start, args=(alpha_p, eta, sigma2, tau), jac=lambda y, *a: jacobian(*y, *a), tol=1e-14)
        # A root is where the field vanishes; hybr's `success` (progress in x) can be False on one.
        if np.all(np.isfinite(sol.x)) and np.abs(_rhs(sol.x, alpha_p, eta, sigma2, tau)).max() < 1e-12:
            found.append(sol.x)
    assert found
    for x in found:
        distances = [abs(x[0] - fp.p) / scale_p + abs(x[1] - fp.s) / scale_s for fp in ours]
        assert min(distances) < 1e-6, (x, ours)
    for fp in ours:
        assert min(abs(x[0] - fp.p) / scale_p + abs(x[1] - fp.s) / scale_s for x in found) < 1e-6


@settings(max_examples=40, deadline=None)
@given(alpha_ps, fractions, sigma2s, taus)
def test_stability_and_eigenvalues(alpha_p, fraction, sigma2, tau):
    eta = fraction * eta_critical(tau, sigma2)
    k = 1 + sigma2
    report = fixed_points(alpha_p, eta, sigma2, tau)
    points = {fp.name: fp for fp in report.fixed_points}
    assert report.regime == "moderate"
    assert points["collapse"].stable and points["p+"].stable and not points["p-"].stable
    np.testing.assert_allclose(points["collapse"].eigenvalues, [-2 * eta, -eta], rtol=1e-12)
    for name in ("p-", "p+"):
        fp = points[name]
        assert fp.s == pytest.approx(fp.p**2 / alpha_p, rel=1e-12)
        np.testing.assert_allclose(sorted(fp.eigenvalues), sorted([-2 * eta, eta - k * fp.p**2]), rtol=1e-7, atol=1e-12)
        step = 1e-6 * max(1.0, fp.p)  # the analytic Jacobian against central differences
        numeric = np.column_stack([(_rhs([fp.p + dp, fp.s + ds], alpha_p, eta, sigma2, tau)
                                    - _rhs([fp.p - dp, fp.s - ds], alpha_p, eta, sigma2, tau)) / (2 * step)
                                   for dp, ds in ((step, 0), (0, step))])
        np.testing.assert_allclose(jacobian(fp.p, fp.s, alpha_p, eta, sigma2, tau), numeric, rtol=1e-5, atol=1e-7)


@given(alpha_ps, st.floats(1.01, 20.0), sigma2s, taus)
def test_too_large_weight_decay_leaves_only_the_origin(alpha_p, factor, sigma2, tau):
    report = fixed_points(alpha_p, factor * eta_critical(tau, sigma2), sigma2, tau)
    assert report.regime == "too-large"
    assert [(fp.name, fp.p, fp.s, fp.stable) for fp in report.fixed_points] == [("collapse", 0.0, 0.0, True)]


def test_fixed_points_merge_at_the_critical_weight_decay():
    report = fixed_points(1.0, 0.25, 0.0, 1.0)
    assert report.regime == "moderate"
    merged = [fp for fp in report.fixed_points if fp.name == "p-=p+"]
    assert len(merged) == 1 and merged[0].p == pytest.approx(0.5)
    assert not merged[0].stable  # a saddle-node: one eigenvalue is 0
    assert max(merged[0].eigenvalues) == pytest.approx(0.0, abs=1e-12)


@given(taus, sigma2s, alpha_ps)
def test_eta_critical_does_not_depend_on_alpha_p(tau, sigma2, alpha_p):
    """Whatever α_p, non-collapsed fixed points exist just below τ²/(4(1+σ²)) (typed here, not the code's)
    and none just above: the threshold does not move with the predictor's lr."""
    eta_star = tau**2 / (4 * (1 + sigma2))
    below = [fp for fp in fixed_points(alpha_p, 0.99 * eta_star, sigma2, tau).fixed_points if fp.name != "collapse"]
    above = [fp for fp in fixed_points(alpha_p, 1.01 * eta_star, sigma2, tau).fixed_points if fp.name != "collapse"]
    assert {fp.name for fp in below} == {"p-", "p+"} and not above


@given(taus, sigma2s, fractions, st.floats(1.01, 1.5))
def test_p_minus_grows_with_eta_and_shrinks_with_tau(tau, sigma2, fraction, factor):
    eta = fraction * eta_critical(tau, sigma2) / factor
    p_minus = p_roots(eta, tau, sigma2)[0]
    assert p_roots(eta * factor, tau, sigma2)[0] > p_minus
    assert p_roots(eta, tau * factor, sigma2)[0] < p_minus


@given(alpha_ps, sigma2s, taus, st.floats(-3, 3), st.floats(0, 3))
def test_no_weight_decay_has_two_lines_of_fixed_points(alpha_p, sigma2, tau, p, s):
    report = fixed_points(alpha_p, 0.0, sigma2, tau)
    assert report.regime == "no-weight-decay" and report.fixed_points == ()
    lines = {line.name: line for line in report.fixed_lines}
    assert lines["collapse"].s == 0.0 and lines["non-collapsed"].p == pytest.approx(tau / (1 + sigma2))
    np.testing.assert_allclose(_rhs([p, 0.0], alpha_p, 0.0, sigma2, tau), 0.0, atol=1e-12)
    np.testing.assert_allclose(_rhs([tau / (1 + sigma2), s], alpha_p, 0.0, sigma2, tau), 0.0, atol=1e-12)
    as_dict = report.to_dict()
    assert {"regime", "eta_critical", "fixed_points", "fixed_lines"} <= set(as_dict)


def test_regime_names():
    assert regime(0.0) == "no-weight-decay"
    assert regime(0.25) == "moderate"
    assert regime(0.2501) == "too-large"
    assert "fixed_lines" not in fixed_points(1.0, 0.1).to_dict()


@settings(max_examples=30, deadline=None)
@given(alpha_ps, fractions, sigma2s, taus)
def test_parabola_velocity_vanishes_at_the_fixed_points(alpha_p, fraction, sigma2, tau):
    eta = fraction * eta_critical(tau, sigma2)
    p_minus, p_plus = p_roots(eta, tau, sigma2)
    np.testing.assert_allclose(parabola_velocity([0.0, p_minus, p_plus], alpha_p, eta, sigma2, tau), 0.0, atol=1e-12)
    between = (p_minus + p_plus) / 2
    assert parabola_velocity(between, alpha_p, eta, sigma2, tau) > 0 > parabola_velocity(p_minus / 2, alpha_p, eta, sigma2, tau)


def test_closed_form_basin_at_zero_weight_decay_agrees_with_integration():
    """η = 0: the conserved offset c decides collapse; check against the ODE away from the boundaries."""
    rng = np.random.default_rng(1)
    alpha_p, tau, sigma2 = 0.8, 1.0, 0.25
    p0, s0 = rng.uniform(-1.5, 2.5, 600), rng.uniform(0.0, 2.0, 600)
    c = s0 - p0**2 / alpha_p
    k = 1 + sigma2
    clear = (np.abs(c) > 0.05) & (np.abs(c + (tau / k) ** 2 / alpha_p) > 0.05) & (np.abs(p0) > 0.05)
    predicted = collapses_closed_form(p0[clear], s0[clear], alpha_p, 0.0, sigma2, tau)
    observed = integrate_eigen(p0[clear], s0[clear], EigenParams(alpha_p, 0.0, sigma2, tau=tau), 2000.0,
                               n_save=2, rtol=1e-8).collapsed
    assert predicted.any() and not predicted.all()
    np.testing.assert_array_equal(predicted, observed)


def test_closed_form_basin_refuses_off_parabola_states_in_the_moderate_regime():
    with pytest.raises(ValueError, match="parabola"):
        collapses_closed_form(0.5, 1.0, 1.0, 0.1)
    assert collapses_closed_form([0.5, 2.0], [1.0, 0.1], 1.0, 0.3).all()  # η > η*: always


def test_on_the_parabola_is_relative_for_tiny_states():
    """Issue 11: at η = 1e-7 the state (5e-8, 5e-13) is 200× above the parabola (p² = 2.5e-15), not on it:
    an absolute 1e-12 tolerance called it on the parabola and below p₋ ≈ 1e-7, hence 'collapse'. It
    survives: c > 0 lifts p past p₋ (integration). States truly on the parabola still get the closed form."""
    with pytest.raises(ValueError, match="parabola"):
        collapses_closed_form(5e-8, 5e-13, 1.0, 1e-7)
    traj = integrate_eigen(5e-8, 5e-13, EigenParams(1.0, 1e-7, 0.0, tau=1.0), 10.0, n_save=2)
    assert traj.verdicts == ("non-collapsed",)
    p0 = np.array([5e-8, 2e-7])
    assert list(collapses_closed_form(p0, p0**2, 1.0, 1e-7)) == [True, False]


@settings(max_examples=30, deadline=None)
@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(-2, 2), alpha_ps, st.floats(0, 0.5), sigma2s, st.floats(0.05, 5))
def test_ema_jacobian_matches_central_differences(p, w, a, alpha_p, eta, sigma2, beta):
    params = EigenParams(alpha_p, eta, sigma2, beta=beta)
    step = 1e-6
    numeric = np.column_stack([(ema_mode_rhs(np.array([p, w, a]) + d, params) - ema_mode_rhs(np.array([p, w, a]) - d, params))
                               / (2 * step) for d in step * np.eye(3)])
    np.testing.assert_allclose(ema_jacobian(p, w, a, alpha_p, eta, sigma2, beta), numeric, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(alpha_ps, fractions, sigma2s, st.floats(0.01, 20.0))
def test_ema_fixed_points_at_tau_one_keep_their_stability(alpha_p, fraction, sigma2, beta):
    """With EMA (τ = 1 at rest), the origin and p₊ stay stable and p₋ a saddle for every β (Jacobian of (p, w, a))."""
    eta = fraction * eta_critical(1.0, sigma2)
    for fp in fixed_points(alpha_p, eta, sigma2, 1.0).fixed_points:
        w = np.sqrt(fp.s)
        values = np.linalg.eigvals(ema_jacobian(fp.p, w, w, alpha_p, eta, sigma2, beta)).real
        assert (values.max() < 0) == (fp.name != "p-")


@pytest.mark.parametrize("kwargs, field", [
    (dict(alpha_p=0.0, eta=0.1), "alpha_p"), (dict(alpha_p=1.0, eta=-0.1), "eta"),
    (dict(alpha_p=1.0, eta=0.1, sigma2=-1.0), "sigma2"), (dict(alpha_p=1.0, eta=0.1, tau=-1.0), "tau"),
    (dict(alpha_p=float("nan"), eta=0.1), "alpha_p"), (dict(alpha_p=1.0, eta=float("inf")), "eta"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fixed_points(**kwargs)
