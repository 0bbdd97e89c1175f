"""linear_dynamics.modes (issue 21, item 1): per-mode critical weight decays on anisotropic inputs,
against the paper's η* (isotropic case), sympy (the decoupled matrix flow solved symbolically), a
brute-force count, and a direct simulation of the matrix flow with known commuting covariances."""
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.fixed_points import eta_critical
from linear_dynamics.modes import isotropic_mode, mode_thresholds, surviving_modes

positive = st.floats(0.01, 100, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(tau=st.floats(0, 3), sigma2=st.floats(0, 10))
def test_the_isotropic_case_is_the_papers_eta_star(tau, sigma2):
    assert mode_thresholds([1.0], [sigma2], tau)[0] == pytest.approx(eta_critical(tau, sigma2), rel=1e-12, abs=1e-300)


def test_sympy_the_decoupled_matrix_flow_keeps_a_nonzero_fixed_point_up_to_the_formula():
    """Eqs. 2–3 with diagonal W, W_p, W_a = τW and X = λ, X' = ν in one direction, solved by sympy:
    the non-zero fixed points are the roots of a quadratic in p, real exactly up to η* = τ²λ²/(4(λ+ν))."""
    p, w, lam, nu, tau, eta, alpha = sp.symbols("p w lambda nu tau eta alpha", positive=True)
    dp = alpha * (-p * w * (lam + nu) + tau * w * lam) * w - eta * p       # dW_p/dt, one entry
    dw = p * (-p * w * (lam + nu) + tau * w * lam) - eta * w               # dW/dt, one entry
    condition = sp.expand(dw / w)  # w ≠ 0: p(τλ − (λ+ν)p) = η, a condition on p alone
    assert w not in condition.free_symbols
    # dp = 0 then fixes w²; on the condition's roots it is the parabola s = w² = p²/α_p (Eq. 14 at c = 0)
    s = sp.Symbol("s", positive=True)
    (w2,) = sp.solve(sp.Eq(dp.subs(w, sp.sqrt(s)), 0), s)
    on_roots = w2.subs(tau * lam, (eta + (lam + nu) * p**2) / p)
    assert sp.simplify(on_roots - p**2 / alpha) == 0
    discriminant = sp.discriminant(sp.Poly(condition, p))
    eta_star = sp.solve(sp.Eq(discriminant, 0), eta)
    assert len(eta_star) == 1
    assert sp.simplify(eta_star[0] - mode_thresholds_symbolic(tau, lam, nu)) == 0
    for values in ({lam: 2, nu: 0.5, tau: 1}, {lam: 0.3, nu: 2, tau: 0.7}):
        assert float(eta_star[0].subs(values)) == pytest.approx(
            mode_thresholds([float(values[lam])], [float(values[nu])], float(values[tau]))[0], rel=1e-12)


def mode_thresholds_symbolic(tau, lam, nu):
    return tau**2 * lam**2 / (4 * (lam + nu))


@settings(max_examples=60, deadline=None)
@given(lam=st.lists(positive, min_size=1, max_size=12), seed=st.integers(0, 1000), eta=st.floats(0, 30))
def test_the_staircase_counts_the_modes_above_eta_by_brute_force(lam, seed, eta):
    nu = np.random.default_rng(seed).uniform(0, 5, len(lam))
    thresholds = [tau_lam**2 / (4 * (tau_lam + n)) for tau_lam, n in zip(lam, nu)]
    assert surviving_modes(eta, lam, nu) == sum(t > eta for t in thresholds)
    grid = np.linspace(0, 30, 50)
    counts = surviving_modes(grid, lam, nu)
    assert np.all(np.diff(counts) <= 0)  # a staircase, down in η


def test_a_mode_is_the_isotropic_eigen_ode_in_rescaled_time():
    """One mode of the decoupled flow integrated directly (scipy LSODA) against Eqs. 11–12 at σ² = ν/λ,
    weight decay η/λ, over λ times the time."""
    lam, nu, alpha_p, eta, t_end = 0.4, 0.3, 2.0, 0.02, 30.0

    def rhs(t, y):
        p, s = y
        gap = lam - (lam + nu) * p  # τ = 1
        return [alpha_p * s * gap - eta * p, 2 * p * s * gap - 2 * eta * s]

    direct = solve_ivp(rhs, (0, t_end), [0.2, 0.3], method="LSODA", rtol=1e-11, atol=1e-13).y[:, -1]
    params, scale = isotropic_mode(lam, nu, alpha_p, eta)
    mapped = integrate_eigen(0.2, 0.3, params, scale * t_end, n_save=2)
    assert mapped.p[-1, 0] == pytest.approx(direct[0], rel=1e-7) and mapped.s[-1, 0] == pytest.approx(direct[1], rel=1e-7)


def test_a_mode_with_an_ema_target_is_the_isotropic_eigen_ode_in_rescaled_time():
    """With an EMA target (Eq. 13), one mode (p, w, a) in real time, integrated directly by scipy: drive
    λa − (λ+ν)pw, dp = α_p w·drive − ηp, dw = p·drive − ηw, da = β(w − a); against Eqs. 11–13 at σ² = ν/λ,
    weight decay η/λ and EMA rate β/λ over λ times the time (a wrong β scaling moves τ by far more than rtol)."""
    lam, nu, alpha_p, eta, beta, t_end = 0.4, 0.3, 2.0, 0.02, 0.5, 30.0
    p0, w0, tau0 = 0.2, math.sqrt(0.3), 0.8

    def rhs(t, y):
        p, w, a = y
        drive = lam * a - (lam + nu) * p * w
        return [alpha_p * w * drive - eta * p, p * drive - eta * w, beta * (w - a)]

    p, w, a = solve_ivp(rhs, (0, t_end), [p0, w0, tau0 * w0], method="LSODA", rtol=1e-11, atol=1e-13).y[:, -1]
    params, scale = isotropic_mode(lam, nu, alpha_p, eta, beta=beta)
    mapped = integrate_eigen(p0, w0**2, params, scale * t_end, tau0=tau0, n_save=2)
    assert mapped.p[-1, 0] == pytest.approx(p, rel=1e-6) and mapped.s[-1, 0] == pytest.approx(w**2, rel=1e-6)
    assert mapped.tau[-1, 0] == pytest.approx(a / w, rel=1e-6)


def test_at_a_threshold_exactly_the_mode_is_lost_and_at_most_n2_modes_survive():
    """η_j* = 1²·2²/(4·2) = 0.5 for λ = 2, ν = 0 (exact in binary): at η = 0.5 the points p± merge, so the
    mode counts as lost; just below it survives. W with n2 = 2 outputs keeps at most 2 of 4 modes."""
    assert surviving_modes(0.5, [2.0], [0.0]) == 0
    assert surviving_modes(np.nextafter(0.5, 0), [2.0], [0.0]) == 1
    lam, nu = [4.0, 3.0, 2.0, 1.0], [0.0] * 4
    assert surviving_modes(0.1, lam, nu) == 4 and surviving_modes(0.1, lam, nu, outputs=2) == 2
    assert surviving_modes(0.6, lam, nu, outputs=2) == 2 and surviving_modes(0.8, lam, nu, outputs=3) == 1
    with pytest.raises(ValueError, match="outputs"):
        surviving_modes(0.1, lam, nu, outputs=0)


@pytest.mark.parametrize("eta, expected", [(0.01, 4), (0.1, 2), (0.03, 3), (0.5, 0)])
def test_the_matrix_flow_with_commuting_covariances_keeps_the_predicted_number_of_modes(eta, expected):
    """SimSiam's matrix flow (Eqs. 2–3, W_a = W) on 4 directions with λ = 2, 1, 0.5, 0.25 and ν = 0.5
    (η_j* = 0.4, 0.167, 0.0625, 0.0208), integrated by scipy from a near-aligned start with noise
    off the diagonal: the directions W keeps are the ones the staircase predicts."""
    lam, nu, alpha_p, n = np.array([2.0, 1.0, 0.5, 0.25]), np.full(4, 0.5), 1.0, 4
    assert surviving_modes(eta, lam, nu) == expected
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(n, n)))[0]  # X and X' commute, in a rotated basis
    X, Xp = basis @ np.diag(lam) @ basis.T, basis @ np.diag(nu) @ basis.T
    W0 = basis @ (np.eye(n) + 0.01 * rng.normal(size=(n, n))) @ basis.T
    P0 = basis @ (np.diag(lam / (lam + nu)) + 0.01 * rng.normal(size=(n, n))) @ basis.T  # above p₋ in every mode

    def rhs(t, y):
        W, P = y[:n * n].reshape(n, n), y[n * n:].reshape(n, n)
        residual = -P @ W @ (X + Xp) + W @ X
        return np.concatenate([(P.T @ residual - eta * W).ravel(), (alpha_p * residual @ W.T - eta * P).ravel()])

    end = solve_ivp(rhs, (0, 400), np.concatenate([W0.ravel(), P0.ravel()]), method="LSODA", rtol=1e-9,
                    atol=1e-12).y[:, -1]
    singular = np.linalg.svd(end[:n * n].reshape(n, n), compute_uv=False)
    assert int((singular > 1e-2).sum()) == expected


def test_bad_spectra_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="one length"):
        mode_thresholds([1, 2], [0.1])
    with pytest.raises(ValueError, match="lam must be > 0"):
        mode_thresholds([0.0], [0.1])
    with pytest.raises(ValueError, match="finite"):
        mode_thresholds([np.nan], [0.1])
    with pytest.raises(ValueError, match="eta"):
        surviving_modes(-1.0, [1.0], [0.1])


def test_sympy_the_networks_predictor_decay_alpha_eta_keeps_the_threshold_and_puts_s_on_p_squared():
    """SGD applies weight decay inside the predictor's group, whose lr is α_p·lr, so the network's W_p decays
    at α_p·η, not the paper's η (the R1 rung, deep/ladder): dp/dt = α_p[s(τλ − (λ+ν)p) − ηp]. Solved
    by sympy: the non-collapsed fixed points are the roots of (λ+ν)p² − τλp + η = 0 with s = p², so η_j*
    is the same τ²λ²/(4(λ+ν)) and s₊ = p₊² ≥ η/(λ+ν) (the floor `population.surviving_count` uses)."""
    import sympy as sp

    p, s, lam, nu, tau, eta, alpha = sp.symbols("p s lambda nu tau eta alpha_p", positive=True)
    dp = alpha * (s * (tau * lam - (lam + nu) * p) - eta * p)
    ds = 2 * s * (p * tau * lam - (lam + nu) * p**2 - eta)
    roots = sp.solve([dp, ds], [p, s], dict=True)
    nonzero = [r for r in roots if r[s] != 0]
    assert len(nonzero) == 2
    for r in nonzero:
        assert sp.simplify(r[s] - r[p] ** 2) == 0
        assert sp.simplify((lam + nu) * r[p] ** 2 - tau * lam * r[p] + eta) == 0
    disc = sp.discriminant((lam + nu) * p**2 - tau * lam * p + eta, p)
    assert sp.simplify(sp.solve(disc, eta)[0] - tau**2 * lam**2 / (4 * (lam + nu))) == 0
    p_plus = max((r[p] for r in nonzero), key=lambda e: e.subs({lam: 2, nu: 1, tau: 1, eta: sp.Rational(1, 10)}))
    bound = (p_plus**2 - eta / (lam + nu)).subs({tau: 1})
    for values in ({lam: 2, nu: 1, eta: sp.Rational(1, 10)}, {lam: 1, nu: 3, eta: sp.Rational(1, 20)}):
        assert bound.subs(values).evalf() >= 0
