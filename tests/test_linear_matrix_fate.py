"""Matrix-model verdicts (linear_dynamics.matrix_fate): each certificate against the dynamics it claims.

The reference flow here is independent of `matrix_rhs`: torch autograd differentiates the population
loss J = ½E‖W_pWx1 − sg(W)x2‖² = ½[k‖W_pW‖² − 2⟨W_pW, W⟩ + k‖W‖²] (E[x1x1ᵀ] = kI, E[x1x2ᵀ] = I), and
scipy's LSODA integrates dW/dt = −∂J/∂W − ηW, dW_p/dt = −α_p ∂J/∂W_p − ηW_p.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.integrate import solve_ivp

from linear_dynamics import matrix_fate as mf
from linear_dynamics.fixed_points import p_roots
from linear_dynamics.matrix_flow import matrix_jacobian, matrix_rhs
from linear_dynamics.matrix_model import initial_state, simulate_flow
from linear_dynamics.params import LinearConfig
from linear_dynamics.sgd import simulate_sgd

ETA_STAR = 1 / 6  # σ² = 0.5, τ = 1


def _autograd_flow(config: LinearConfig, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """(W, W_p) at t_end of the SimSiam flow, from autograd on J (module docstring) and LSODA with the
    autograd Jacobian of that right-hand side."""
    k, n1, n2 = 1 + config.sigma2, config.n1, config.n2
    W0, W_p0, _ = initial_state(config)

    def velocity(y):
        W, W_p = y[:n2 * n1].reshape(n2, n1), y[n2 * n1:].reshape(n2, n2)
        target = W.detach()
        J = 0.5 * (k * (W_p @ W).pow(2).sum() - 2 * ((W_p @ W) * target).sum() + k * target.pow(2).sum())
        g_W, g_W_p = torch.autograd.grad(J, (W, W_p), create_graph=True)
        return torch.cat([(-g_W - config.eta * W).reshape(-1), (-config.alpha_p * g_W_p - config.eta * W_p).reshape(-1)])

    def rhs(_, y):
        return velocity(torch.tensor(y, requires_grad=True)).detach().numpy()

    size = n2 * n1 + n2 * n2

    def jac(_, y):  # only steers LSODA's Newton iterations; the solution is set by rhs
        W, W_p = y[:n2 * n1].reshape(n2, n1), y[n2 * n1:].reshape(n2, n2)
        return matrix_jacobian(W, W_p, W, config)[:size, :size]

    sol = solve_ivp(rhs, (0, t_end), np.concatenate([W0.ravel(), W_p0.ravel()]), method="LSODA", rtol=1e-10,
                    atol=1e-14, jac=jac)
    assert sol.success
    return sol.y[:n2 * n1, -1].reshape(n2, n1), sol.y[n2 * n1:, -1].reshape(n2, n2)


def _surviving_modes_match_p_plus(W: np.ndarray, config: LinearConfig) -> int:
    """Every eigenvalue of F = WWᵀ is 0 or p₊²/α_p (the closed form); returns how many are the latter."""
    p_plus = p_roots(config.eta, 1.0, config.sigma2)[1]
    s = np.linalg.eigvalsh(W @ W.T)
    alive = s > 1e-6
    np.testing.assert_allclose(s[alive], p_plus**2 / config.alpha_p, rtol=1e-6)
    assert np.all(s[~alive] < 1e-9)
    return int(alive.sum())


def test_just_above_eta_star_collapses_although_the_snapshot_does_not_show_it():
    """η = 1.1η* (issue 11): ‖W(40)‖ = 0.65, yet the flow goes to 0; G3 certifies it at t = 0."""
    config = LinearConfig(eta=1.1 * ETA_STAR)
    run = simulate_flow(config)
    assert run.W_norm[-1] > 0.1 * run.W_norm[0]
    assert (run.verdict, run.fate.basis, run.fate.t_decided) == ("collapsed", "theorem", 0.0)
    W, _ = _autograd_flow(config, 400.0)
    assert np.linalg.norm(W) < 1e-10


@pytest.mark.parametrize("fraction", [0.9, 0.99])
def test_just_below_eta_star_survives_at_p_plus(fraction):
    """Below η*, certificate A (numerical) says non-collapsed; the independent flow at t = 400 has every
    surviving mode at the closed-form p₊²/α_p, as many as A counted."""
    config = LinearConfig(eta=fraction * ETA_STAR)
    run = simulate_flow(config)
    assert (run.verdict, run.fate.basis) == ("non-collapsed", "numerical")
    W, _ = _autograd_flow(config, 400.0)
    assert _surviving_modes_match_p_plus(W, config) == run.fate.modes_at_p_plus > 0


def test_a_large_alpha_p_run_is_healthy_below_the_old_snapshot_threshold():
    """α_p = 10⁴ (stiff: W_p relaxes 10⁴ times faster than W moves) puts every mode at s = p₊²/α_p:
    ‖W(t_end)‖ < 1e-2‖W(0)‖ (the old snapshot rule said collapsed), but nothing collapses."""
    config = LinearConfig(n1=6, n2=4, alpha_p=1e4, t_end=300.0)
    run = simulate_flow(config)
    assert run.W_norm[-1] < 1e-2 * run.W_norm[0]
    assert run.verdict == "non-collapsed" and run.fate.modes_at_p_plus == config.n2
    W, _ = _autograd_flow(config, 1000.0)
    assert _surviving_modes_match_p_plus(W, config) == config.n2


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 0.5), st.floats(0.0, 1.0), st.floats(0.1, 10.0),
       st.sampled_from([None, 0.3, 3.0]), st.booleans(), st.integers(0, 2))
def test_origin_box_faces_point_inwards(seed, eta, sigma2, alpha_p, beta, symmetric, face):
    """Certificate B: on each face of the box (the other norms anywhere inside) the norm of that face
    decreases (weakly for W_a), so the box traps; derivatives from Eqs. 2–4 at random states."""
    config = LinearConfig(n1=5, n2=3, eta=eta, sigma2=sigma2, alpha_p=alpha_p, beta=beta, symmetric_predictor=symmetric)
    a, b = mf.origin_box(config)
    rng = np.random.default_rng(seed)

    def direction(shape, radius, on_face):
        M = rng.normal(size=shape)
        if symmetric and shape[0] == shape[1]:
            M = M + M.T
        return M / np.linalg.norm(M) * radius * (1.0 if on_face else rng.uniform(0, 1))

    W_p = direction((3, 3), a, face == 0)
    W = direction((3, 5), b, face == 1)
    W_a = direction((3, 5), b, face == 2) if config.ema else W
    if not config.ema and face == 2:
        return
    dW, dW_p, dW_a = matrix_rhs(W, W_p, W_a, config)
    rate = [np.sum(W_p * dW_p), np.sum(W * dW), np.sum(W_a * dW_a)][face]  # ½ d‖·‖²/dt on that face
    assert rate < 0 if face < 2 else rate <= 1e-15


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(1.01, 3.0), st.floats(0.0, 1.0), st.floats(0.1, 5.0), st.floats(0.1, 3.0))
def test_above_eta_star_every_state_contracts(seed, ratio, sigma2, alpha_p, beta):
    """Certificate G3 at random states with η = ratio·η*: SimSiam d‖W‖²/dt ≤ −2(η − η*)‖W‖²; EMA
    dV/dt < 0 for V = ‖W‖² + (2η/β)‖W_a‖²."""
    eta = ratio / (4 * (1 + sigma2))
    rng = np.random.default_rng(seed)
    W, W_p, W_a = rng.normal(size=(4, 6)), rng.normal(size=(4, 4)) * rng.uniform(0.1, 3), rng.normal(size=(4, 6))
    simsiam = LinearConfig(n1=6, n2=4, eta=eta, sigma2=sigma2, alpha_p=alpha_p)
    dW, _, _ = matrix_rhs(W, W_p, W, simsiam)
    assert 2 * np.sum(W * dW) <= -2 * (eta - 1 / (4 * (1 + sigma2))) * np.sum(W * W) + 1e-12
    ema = replace(simsiam, beta=beta)
    dW, _, dW_a = matrix_rhs(W, W_p, W_a, ema)
    assert 2 * np.sum(W * dW) + (2 * eta / beta) * 2 * np.sum(W_a * dW_a) < 0
    assert mf.guaranteed_rate(simsiam) > 0 and mf.guaranteed_rate(ema) > 0


def test_the_bound_of_g3_is_sharp_below_eta_star():
    """At η < η*, W_p = I/(2k) makes ‖W‖ grow: d‖W‖²/dt = 2(η* − η)‖W‖² > 0, so no global certificate exists."""
    config = LinearConfig(n1=6, n2=4, eta=0.9 * ETA_STAR)
    W = np.random.default_rng(0).normal(size=(4, 6))
    dW, _, _ = matrix_rhs(W, np.eye(4) / (2 * 1.5), W, config)
    assert 2 * np.sum(W * dW) == pytest.approx(2 * (ETA_STAR - config.eta) * np.sum(W * W))
    assert mf.global_certificate(config, W, np.eye(4)) is None


def test_at_eta_star_the_flow_is_undecided():
    """At η = η* the surviving modes creep towards the merged point (not stable): no certificate holds."""
    run = simulate_flow(LinearConfig(eta=ETA_STAR, t_end=20.0))
    assert run.verdict == "undecided" and run.fate.basis is None and "no certificate" in run.fate.rule


def test_certificate_a_refuses_unaligned_states():
    """Negative control of A: the start (W_p random, asymmetric) is not certified, whatever its modes."""
    config = LinearConfig()
    assert mf.aligned_certificate(*initial_state(config), config, mf.FLOW_ALIGN_TOL) is None


def test_variants_with_a_global_certificate():
    config = LinearConfig(predictor=False, sigma2=0.0, eta=0.0)  # nothing moves W: the negative control of G2
    W0, W_p0, _ = initial_state(config)
    fate = mf.global_certificate(config, W0, W_p0)
    assert (fate.verdict, fate.basis) == ("non-collapsed", "theorem")
    config = LinearConfig(eta=0.0)
    W0, _, _ = initial_state(config)
    big = 10 * np.eye(config.n2)  # C = W Wᵀ − 100 I ⪯ 0: Thm 1 gives no lower bound, so no certificate
    assert np.linalg.eigvalsh(W0 @ W0.T - big.T @ big).max() < 0
    assert mf.global_certificate(config, W0, big) is None


def _population_hessian_top(W, W_p, config, wrt: str) -> float:
    """Largest eigenvalue of the Hessian of J + weight decay (stop-gradient), by torch autograd."""
    k = 1 + config.sigma2
    target = torch.tensor(W)

    def loss(W_, W_p_):
        return 0.5 * (k * (W_p_ @ W_).pow(2).sum() - 2 * ((W_p_ @ W_) * target).sum())

    if wrt == "W":
        H = torch.autograd.functional.hessian(lambda x: loss(x.reshape(W.shape), torch.tensor(W_p)),
                                              torch.tensor(W).reshape(-1))
        return float(torch.linalg.eigvalsh(H).max()) + config.eta
    H = torch.autograd.functional.hessian(lambda x: loss(torch.tensor(W), x.reshape(W_p.shape)),
                                          torch.tensor(W_p).reshape(-1))
    return config.alpha_p * float(torch.linalg.eigvalsh(H).max()) + config.eta


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 5.0), st.floats(0.0, 1.0), st.floats(0.0, 0.3))
def test_sgd_curvature_is_the_hessians_largest_block_eigenvalue(seed, alpha_p, sigma2, eta):
    config = LinearConfig(n1=5, n2=3, alpha_p=alpha_p, sigma2=sigma2, eta=eta)
    rng = np.random.default_rng(seed)
    W, W_p = rng.normal(size=(3, 5)), rng.normal(size=(3, 3))
    expected = max(_population_hessian_top(W, W_p, config, "W"), _population_hessian_top(W, W_p, config, "W_p"))
    assert mf.sgd_curvature(W, W_p, config) == pytest.approx(expected, rel=1e-9)


def test_sgd_with_a_huge_learning_rate_is_diverged_not_a_verdict():
    """Issue 11: lr 100 used to end at ‖W‖ 88 and be called non-collapsed. Its iterates blow up within 20 steps."""
    run = simulate_sgd(LinearConfig(), lr=100.0, steps=20)
    assert run.verdict == "diverged" and 0 < run.fate.t_decided <= 2000 and "blew up" in run.fate.rule
    assert "lr·κ" in run.fate.rule and np.all(np.isfinite(run.W))


def test_sgd_that_loses_stability_later_is_diverged_there():
    """α_p = 0.1: κ(0) ≈ 0.45 allows lr = 3.5 at the start, but near p₊ κ ≈ kp₊² + η ≈ 0.65 does not."""
    config = LinearConfig(alpha_p=0.1)
    assert 3.5 * mf.sgd_curvature(*initial_state(config)[:2], config) < 2
    run = simulate_sgd(config, lr=3.5)
    assert run.verdict == "diverged" and run.fate.t_decided > 3.5 and run.t[-1] < run.fate.t_decided


@pytest.mark.parametrize("seed", [0, 2])
def test_sgd_past_the_starting_curvature_is_not_diverged_while_it_stays_finite(seed):
    """Issue 22: lr·κ(0) > 2 was reported 'diverged at t = 0'; these seeds train finite to t_end and end at p₊
    (the lr·κ > 2 region is left before the iterates can blow up)."""
    config = LinearConfig(seed=seed)
    assert 0.7 * mf.sgd_curvature(*initial_state(config)[:2], config) > 2
    run = simulate_sgd(config, lr=0.7)
    assert run.t[-1] == pytest.approx(config.t_end, abs=0.7) and np.all(np.abs(run.W) < 10)
    assert run.verdict == "non-collapsed"


def test_sgd_collapse_needs_the_sampled_decay():
    """Negative control of the sampled-decay rule: two steps are shorter than the window 2/r."""
    run = simulate_sgd(LinearConfig(predictor=False, t_end=0.02), lr=0.01)
    assert run.verdict == "undecided"
    assert simulate_sgd(LinearConfig(predictor=False, t_end=10.0), lr=0.01).verdict == "collapsed"


def test_size_limit_is_one_clear_error():
    with pytest.raises(ValueError, match=r"n1, n2: .* n1·n2 <= 16384"):
        LinearConfig(n1=100_000, n2=100_000)
    with pytest.raises(ValueError, match="n2²"):
        LinearConfig(n1=1, n2=200)
    LinearConfig(n1=128, n2=128)


@pytest.mark.parametrize("kwargs, field", [
    (dict(alpha_p=1e7), "alpha_p"), (dict(sigma2=2e6), "sigma2"), (dict(eta=1e300), "eta"),
    (dict(beta=1e7), "beta"), (dict(t_end=2e4), "t_end"),
])
def test_magnitude_limits(kwargs, field):
    with pytest.raises(ValueError, match=f"{field} must be at most"):
        LinearConfig(**kwargs)


@pytest.mark.parametrize("changes, verdict", [({"sigma2": 1e6}, "collapsed"), ({"alpha_p": 1e6}, "non-collapsed")])
def test_extreme_rates_at_the_limits_are_decided(changes, verdict):
    """σ² = 10⁶ (W_p relaxes 10⁶ times faster than W moves) and α_p = 10⁶: stiff, handed to Radau."""
    assert simulate_flow(replace(LinearConfig(n1=6, n2=4), **changes)).verdict == verdict
