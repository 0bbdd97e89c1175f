"""The cosine model (linear_dynamics.cosine_modes, linear_dynamics.cosine_sgd) against independent checks:
torch autograd of the loss, sympy, hand-derived closed forms, and brute-force minibatch SGD of the
matrix model with the real (per-sample) cosine loss, stop-gradient, EMA, weight decay and momentum.

`python tests/test_linear_cosine_modes.py fit` reruns the fit of LINEAR_CRITICAL_MISMATCH (about 2 min);
`... gamma EMA WD SEEDS [LOG_EVERY]` measures γ's spread over seeds, `... erank LR WD EMA SEEDS` a verdict's.
"""
import math
import sys

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings, strategies as st
from scipy.integrate import solve_ivp

from linear_dynamics.cosine_modes import (CosineModeParams, cosine_gradients, cosine_loss,
                                          cosine_mode_rhs, effective_rank, integrate_cosine_modes, intrinsic_time,
                                          predictor_speed_ratio)
from linear_dynamics.cosine_sgd import (LINEAR_CRITICAL_MISMATCH, SGDSetting, angular_step_sq, critical_weight_decay,
                                        equilibrium_norm_sq, restoring_rate, target_coherence, target_mismatch)

# The brute-force setting every SGD check below shares (the deep runs' cpu preset: lr 0.2, momentum 0.9).
N1, N2, BATCH, SIGMA2 = 32, 16, 256, 0.5
STEPS = 3000
FIT = SGDSetting(lr=0.2, momentum=0.9, ema=0.99)  # where LINEAR_CRITICAL_MISMATCH was fitted
# γ (S3) comes from the coherence averaged over the second half of a run, recorded every GAMMA_LOG_EVERY
# steps (as `restoring_rates` does). Its spread over 12 seeds (init and samples), measured with
# `python tests/test_linear_cosine_modes.py gamma EMA WD 12 25`: m = 0.99, wd 0.075: mean 0.01863, sd 0.00083;
# m = 0.9, wd 0.3: mean 0.03413, sd 0.00169. (Recorded every 375 steps, one run's γ at m = 0.9 had sd 0.0089
# over 24 seeds, mean 0.0358: the single probe of seed 0, 0.0185, was the lowest of the 24, and an Intel CPU read
# 0.038; that is how a test pinned to it failed there.) A test reads γ from GAMMA_SEEDS and holds its
# claims over γ̄ ± 4·sd/√n, where another CPU's floating-point path (another draw of the same noise) lands.
GAMMA_LOG_EVERY = 25
GAMMA_SEEDS = (0, 1)
GAMMA_SD = {0.99: 0.00083, 0.9: 0.00169}
FIT_SEEDS = range(12)  # γ for the fit of LINEAR_CRITICAL_MISMATCH


def erank(matrix: torch.Tensor) -> float:
    """Effective rank (exp of the entropy of the normalised eigenvalues) of matrix·matrixᵀ."""
    values = torch.linalg.svdvals(matrix) ** 2
    q = values / values.sum()
    q = q[q > 0]
    return float(torch.exp(-(q * torch.log(q)).sum()))


def sgd_cosine(lr, weight_decay, ema, momentum=0.9, alpha_p=1.0, sigma2=SIGMA2, n1=N1, n2=N2, batch=BATCH,
               steps=STEPS, seed=0, scale=1.0, frozen_predictor=None, log_every=None):
    """Real minibatch SGD on W, W_p with the symmetric negative cosine of the deep runs, nothing taken
    from the model. x ~ N(0, I), views x + σN(0, I); target W_a x (stop-gradient), W_a ← m W_a + (1 − m) W
    after each step (ema = 0: the target is W itself); torch.optim.SGD with momentum and weight decay
    on both, predictor lr α_p·lr. W(0) ~ N(0, 1/n1)·scale, W_p(0) ~ N(0, 1/16)·scale.

    Returns a dict of per-record lists over the second half of the run (records every log_every steps):
    erank (of W), coherence ⟨W_a, W⟩/(‖W_a‖‖W‖), w_sq (‖W‖²), grad_sq (‖∂L/∂W‖², before the step),
    angle_sq (the squared angle W turned by in that step); and the final 'W', 'W_p', 'W_a'.
    """
    log_every = log_every or steps // 8
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(n2, n1, generator=g, dtype=torch.float64) / math.sqrt(n1) * scale).requires_grad_()
    if frozen_predictor is None:
        W_p = (torch.randn(n2, n2, generator=g, dtype=torch.float64) / 4 * scale).requires_grad_()
        groups = [{"params": [W], "lr": lr}, {"params": [W_p], "lr": alpha_p * lr}]
    else:
        W_p = torch.as_tensor(frozen_predictor, dtype=torch.float64)
        groups = [{"params": [W], "lr": lr}]
    W_a = W.detach().clone()
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sigma = math.sqrt(sigma2)
    out = {key: [] for key in ("erank", "coherence", "w_sq", "grad_sq", "angle_sq")}
    cos = torch.nn.functional.cosine_similarity
    for step in range(steps):
        x = torch.randn(batch, n1, generator=g, dtype=torch.float64)
        x1 = x + sigma * torch.randn(batch, n1, generator=g, dtype=torch.float64)
        x2 = x + sigma * torch.randn(batch, n1, generator=g, dtype=torch.float64)
        target = (W_a if ema > 0 else W).detach()
        loss = (-0.5 * cos(x1 @ W.T @ W_p.T, x2 @ target.T, dim=1).mean()
                - 0.5 * cos(x2 @ W.T @ W_p.T, x1 @ target.T, dim=1).mean())
        optimizer.zero_grad()
        loss.backward()
        before = W.detach().clone()
        grad_sq = float((W.grad**2).sum())
        optimizer.step()
        if ema > 0:
            with torch.no_grad():
                W_a.mul_(ema).add_((1 - ema) * W)
        if step >= steps // 2 and (step + 1) % log_every == 0:
            with torch.no_grad():
                cosine = float((before * W).sum() / (before.norm() * W.norm()))
                out["erank"].append(erank(W))
                out["coherence"].append(float((W_a * W).sum() / (W_a.norm() * W.norm())))
                out["w_sq"].append(float(before.norm() ** 2))
                out["grad_sq"].append(grad_sq)
                out["angle_sq"].append(math.acos(min(1.0, cosine)) ** 2)
    out.update(W=W.detach(), W_p=W_p.detach(), W_a=W_a)
    return out


def collapsed(run, n2=N2) -> bool:
    """The rule of S4 on a brute-force run: the effective rank of W Wᵀ, averaged over the second half, ≤ n2/2."""
    return float(np.mean(run["erank"])) <= n2 / 2


def fit_critical_mismatch(low=0.1, high=1.0, rel_tol=0.05):
    """D_c of S4: bisect (log wd) the brute-force runs at FIT for the weight decay where the rule flips,
    measure γ at a quarter of it (mean over FIT_SEEDS), and return (wd_c, γ, D_c)."""
    while high / low > 1 + rel_tol:
        mid = math.sqrt(low * high)
        if collapsed(sgd_cosine(FIT.lr, mid, FIT.ema)):
            high = mid
        else:
            low = mid
    threshold = math.sqrt(low * high)
    gamma = float(restoring_rates(FIT, threshold / 4, FIT_SEEDS, GAMMA_LOG_EVERY).mean())
    return threshold, gamma, target_mismatch(FIT, threshold, gamma)


def restoring_rates(setting, weight_decay, seeds, log_every=None) -> np.ndarray:
    """γ of S3 from the brute-force coherence at `weight_decay` (mean over the second half of the run,
    recorded every log_every steps), one value per seed (init and samples)."""
    return np.array([restoring_rate(setting, weight_decay, float(np.mean(sgd_cosine(
        setting.lr, weight_decay, setting.ema, momentum=setting.momentum, seed=seed, log_every=log_every)["coherence"])))
        for seed in seeds])


# ---------------------------------------------------------------- the eigenmode flow (cosine_modes)

def aligned_matrices(w, p, a, n1, seed=0):
    """W = U diag(w) Vᵀ, W_p = U diag(p) Uᵀ, W_a = U diag(a) Vᵀ with random orthogonal U, V."""
    rng = np.random.default_rng(seed)
    n = len(w)
    U = np.linalg.qr(rng.normal(size=(n, n)))[0]
    V = np.linalg.qr(rng.normal(size=(n1, n1)))[0][:, :n]
    return U, V, U @ np.diag(w) @ V.T, U @ np.diag(p) @ U.T, U @ np.diag(a) @ V.T


modes = st.lists(st.tuples(st.floats(0.1, 2.0), st.floats(-1.0, 2.0), st.floats(0.05, 2.0)), min_size=2, max_size=6)


@settings(max_examples=40, deadline=None)
@given(modes, st.floats(0.0, 3.0))
def test_mode_gradients_are_autograd_of_the_rms_loss(triples, sigma2):
    """Eq. M1 against torch autograd of L = −tr(W_p W W_aᵀ)/√(k tr(W_p W Wᵀ W_pᵀ) · k tr(W_a W_aᵀ)) on aligned
    matrices: the same loss, the gradient's diagonal in (U, V) is Eq. M1, and its off-diagonal part is 0
    (aligned modes stay aligned)."""
    w, p, a = (np.array(v) for v in zip(*triples))
    if np.sum(p**2 * w**2) < 1e-6:
        return
    U, V, W, W_p, W_a = aligned_matrices(w, p, a, n1=len(w) + 3)
    k = 1 + sigma2
    Wt, Wpt = torch.tensor(W, requires_grad=True), torch.tensor(W_p, requires_grad=True)
    Wat = torch.tensor(W_a)
    loss = -torch.trace(Wpt @ Wt @ Wat.T) / torch.sqrt(k * torch.trace(Wpt @ Wt @ Wt.T @ Wpt.T) * k * torch.trace(Wat @ Wat.T))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(cosine_loss(w, p, a, sigma2), rel=1e-10, abs=1e-12)
    grad_w = U.T @ Wt.grad.numpy() @ V
    grad_p = U.T @ Wpt.grad.numpy() @ U
    mine_w, mine_p = cosine_gradients(w, p, a, sigma2)
    # Entries of w, p, a are O(1), so are the gradients: round-off is ~1e-15.
    np.testing.assert_allclose(-np.diag(grad_w), mine_w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(-np.diag(grad_p), mine_p, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad_w - np.diag(np.diag(grad_w)), 0, atol=1e-12)


def sampled_cosine_gradients(w, p, a, sigma2, batch=40000, seed=0):
    """(−∂/∂w, −∂/∂p) of the real per-sample −E cos(W_p W x1, W_a x2) on diagonal matrices, by autograd."""
    g = torch.Generator().manual_seed(seed)
    W = torch.tensor(np.diag(w), requires_grad=True)
    W_p = torch.tensor(np.diag(p), requires_grad=True)
    x = torch.randn(batch, len(w), generator=g, dtype=torch.float64)
    x1 = x + math.sqrt(sigma2) * torch.randn(batch, len(w), generator=g, dtype=torch.float64)
    x2 = x + math.sqrt(sigma2) * torch.randn(batch, len(w), generator=g, dtype=torch.float64)
    loss = -torch.nn.functional.cosine_similarity(x1 @ W.T @ W_p.T, x2 @ torch.tensor(np.diag(a)).T, dim=1).mean()
    loss.backward()
    return -torch.diag(W.grad).numpy(), -torch.diag(W_p.grad).numpy()


def test_rms_approximation_of_the_cosine_improves_with_the_number_of_modes():
    """The large-n approximation against the real cosine on 40,000 samples: within 10% at 64 modes, but
    off by a quarter or more at 4 (where the per-sample norms fluctuate): the eigenmode model is a many-mode
    model. (The SGD facts S1–S2 below do not use it.)"""
    def relative_error(n):
        rng = np.random.default_rng(n)
        w, p = rng.uniform(0.3, 1.0, n), rng.uniform(0.2, 1.0, n)
        a = w * rng.uniform(0.6, 1.0, n)
        exact_w, exact_p = sampled_cosine_gradients(w, p, a, SIGMA2)
        mine_w, mine_p = cosine_gradients(w, p, a, SIGMA2)
        return max(np.linalg.norm(exact_w - mine_w) / np.linalg.norm(exact_w),
                   np.linalg.norm(exact_p - mine_p) / np.linalg.norm(exact_p))
    assert relative_error(64) < 0.10
    assert relative_error(4) > 0.25


@settings(max_examples=60, deadline=None)
@given(modes, st.floats(0.0, 3.0))
def test_cosine_gradient_is_orthogonal_to_w_and_p(triples, sigma2):
    """Scale invariance: Σ w_j(−∂L/∂w_j) = Σ p_j(−∂L/∂p_j) = 0, so weight decay alone sets the norms."""
    w, p, a = (np.array(v) for v in zip(*triples))
    if np.sum(p**2 * w**2) < 1e-6:
        return
    grad_w, grad_p = cosine_gradients(w, p, a, sigma2)
    # Each sum is c·g − ρk(Σp²w²)·g, two terms equal to −L, |L| ≤ 1: the round-off is absolute, ~1e-16.
    assert abs(np.dot(w, grad_w)) <= 1e-13
    assert abs(np.dot(p, grad_p)) <= 1e-13


def raw_flow(w0, p0, a0, params, t_end, n_save=5):
    """Eqs. M2–M3 integrated in t with the raw right-hand side (no intrinsic time): an independent path."""
    n = len(w0)

    def rhs(_, y):
        return np.concatenate(cosine_mode_rhs(y[:n], y[n:2 * n], y[2 * n:], params))

    t = np.linspace(0, t_end, n_save)
    sol = solve_ivp(rhs, (0, t_end), np.concatenate([w0, p0, a0]), method="DOP853", t_eval=t, rtol=1e-11, atol=1e-14)
    return t, sol.y[:n].T, sol.y[n:2 * n].T, sol.y[2 * n:].T


W0 = np.array([0.61, 0.96, 0.32, 0.96, 0.45, 0.54])
P0 = np.array([0.85, 0.47, 0.6, 0.13, 0.78, 0.58])
A0 = W0 * np.array([0.9, 1.1, 0.7, 1.0, 0.8, 1.2])
VARIANTS = {
    "simsiam-closed-form": CosineModeParams(sigma2=0.5, eta=0.3, predictor_exponent=0.5),
    "simsiam-trained": CosineModeParams(sigma2=0.5, eta=0.3, alpha_p=0.4),
    "ema-trained": CosineModeParams(sigma2=0.5, eta=0.3, alpha_p=2.5, beta=0.7),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_intrinsic_time_integrator_matches_the_raw_flow_and_the_exact_norms(name):
    """The integrator (intrinsic time, exact norms) against a plain DOP853 solve of the raw Eqs. M2–M3, and
    the norms against the hand-derived ‖w‖ = ‖w(0)‖e^{−ηt}, ‖p‖ = ‖p(0)‖e^{−α_pηt}."""
    params = VARIANTS[name]
    a0 = A0 if params.beta is not None else W0
    t, w, p, a = raw_flow(W0, P0, a0, params, t_end=4.0)
    mine = integrate_cosine_modes(W0, P0, params, 4.0, a0=A0 if params.beta is not None else None, n_save=5)
    np.testing.assert_allclose(mine.w, w, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mine.a, a, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.linalg.norm(W0) * np.exp(-params.eta * t), rtol=1e-8)
    if params.trained_predictor:
        np.testing.assert_allclose(mine.p, p, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(p, axis=1), np.linalg.norm(P0) * np.exp(-params.alpha_p * params.eta * t),
                                   rtol=1e-8)
        ratio = params.alpha_p * np.sum(w**2, axis=1) / np.sum(p**2, axis=1)
        np.testing.assert_allclose(predictor_speed_ratio(t, params, np.linalg.norm(W0), np.linalg.norm(P0)), ratio, rtol=1e-8)


@settings(max_examples=8, deadline=None)
@given(st.floats(0.05, 1.0), st.sampled_from([None, 1.0]))
def test_weight_decay_only_reparametrises_time(eta, alpha_p):
    """SimSiam with a closed-form predictor, or a trained one at α_p = 1: the η-flow's directions at time t
    are the η = 0 flow's at t' = (e^{2ηt} − 1)/(2η) (hand derivation in the module docstring), checked with
    the raw right-hand side for both. So weight decay cannot create a collapse threshold in the flow."""
    kind = {"predictor_exponent": 0.5} if alpha_p is None else {"alpha_p": alpha_p}
    t_end = 1.5 / eta
    _, w, p, _ = raw_flow(W0, P0, W0, CosineModeParams(sigma2=0.5, eta=eta, **kind), t_end, n_save=3)
    t_prime = np.expm1(2 * eta * t_end) / (2 * eta)
    _, w0_flow, p0_flow, _ = raw_flow(W0, P0, W0, CosineModeParams(sigma2=0.5, eta=0.0, **kind), t_prime, n_save=3)
    np.testing.assert_allclose(w[-1] / np.linalg.norm(w[-1]), w0_flow[-1] / np.linalg.norm(w0_flow[-1]), atol=1e-7)
    if alpha_p is not None:
        np.testing.assert_allclose(p[-1] / np.linalg.norm(p[-1]), p0_flow[-1] / np.linalg.norm(p0_flow[-1]), atol=1e-7)
    assert intrinsic_time(t_end, eta, 1.0) == pytest.approx(t_prime, rel=1e-12)


@pytest.mark.parametrize("eta, beta", [(0.0, None), (1.0, None), (0.0, 0.5)])
def test_closed_form_predictor_makes_the_modes_isotropic(eta, beta):
    """Halvagal et al.'s implicit variance regularisation with W_p = (W Wᵀ)^½: every share tends to 1/n
    (the only fixed point with all modes alive: p_j(1 − ρkp_j) = 0 forces equal p_j), for SimSiam at any
    weight decay and for an EMA target without it; the collapse rule never fires."""
    run = integrate_cosine_modes(W0, None, CosineModeParams(sigma2=0.5, eta=eta, beta=beta, predictor_exponent=0.5),
                                 t_end=8.0 if eta else 150.0)
    np.testing.assert_allclose(run.shares[-1], 1 / len(W0), atol=1e-3)
    assert not run.collapsed
    assert effective_rank(run.shares[0]) < len(W0) - 0.3  # it did start anisotropic


def test_weight_decay_freezes_an_ema_target_in_the_flow():
    """With EMA, weight decay makes the target slow relative to the online directions (its rate in intrinsic
    time is β‖w‖² ∝ e^{−2ηt}): the closed-form model stops short of isotropy, with the online pinned to the
    frozen target (p_j w_j ∝ a_j, i.e. w_j² ∝ a_j for W_p = (W Wᵀ)^½), and does not collapse."""
    run = integrate_cosine_modes(W0, None, CosineModeParams(sigma2=0.5, eta=1.0, beta=0.5, predictor_exponent=0.5),
                                 t_end=8.0, a0=A0)
    assert np.ptp(run.shares[-1]) > 0.05
    np.testing.assert_allclose(run.w[-1] ** 2 / np.sum(run.w[-1] ** 2), run.a[-1] / np.sum(run.a[-1]), atol=1e-3)
    assert not run.collapsed


def test_frozen_predictor_concentrates_w_on_its_smallest_positive_eigenvalue():
    """With the predictor frozen (α_p → 0), Eq. M2 drives mode j's share at rate ∝ p_j(1 − p_j⟨p⟩/⟨p²⟩),
    so W ends on the smallest positive p_j (this is why a slow predictor, e.g. α_p < 1 under weight decay
    in the flow, collapses W). Checked against real SGD with a fixed diagonal predictor and the real cosine."""
    p = np.array([-0.5, 0.4, 0.7, 1.0])
    model = integrate_cosine_modes(np.full(4, 0.5), p, CosineModeParams(sigma2=SIGMA2, alpha_p=1e-9), 50.0)
    np.testing.assert_allclose(model.shares[-1], [0, 1, 0, 0], atol=1e-3)
    run = sgd_cosine(1.0, 0.0, 0.0, momentum=0.0, n1=8, n2=4, steps=2000, frozen_predictor=np.diag(p))
    shares = (run["W"] ** 2).sum(dim=1) / (run["W"] ** 2).sum()
    assert int(shares.argmax()) == 1 and float(shares[1]) > 0.9


def test_mode_trajectories_match_real_sgd_with_many_modes():
    """Eigenvalue trajectories: 48 aligned modes (W = diag(w0), W_p = diag(p0), p0 falling as w0 rises),
    SimSiam, trained predictor, no weight decay, real minibatch SGD (lr 2, batch 2048, 300 steps, t = 600)
    against Eqs. M2–M3: the diagonals of W and W_p within 5% (relative, as vectors) and W stays diagonal.
    Both show the modes with the largest predictor eigenvalues dying (F3). Measured over the data seeds
    0 and 1: misses 0.0224 / 0.0222 (W), 0.0169 / 0.0165 (W_p), off-diagonal 0.0515 / 0.0515, so the
    bounds sit at ×2 the value and ×100 its spread over seeds: another CPU's rounding cannot reach them."""
    n = 48
    w0, p0 = np.linspace(0.3, 1.0, n), np.linspace(1.0, 0.2, n)
    g = torch.Generator().manual_seed(0)
    W = torch.tensor(np.diag(w0), requires_grad=True)
    W_p = torch.tensor(np.diag(p0), requires_grad=True)
    optimizer = torch.optim.SGD([W, W_p], lr=2.0)
    cos = torch.nn.functional.cosine_similarity
    for _ in range(300):
        x = torch.randn(2048, n, generator=g, dtype=torch.float64)
        x1 = x + math.sqrt(SIGMA2) * torch.randn(2048, n, generator=g, dtype=torch.float64)
        x2 = x + math.sqrt(SIGMA2) * torch.randn(2048, n, generator=g, dtype=torch.float64)
        loss = (-0.5 * cos(x1 @ W.T @ W_p.T, (x2 @ W.T).detach(), dim=1).mean()
                - 0.5 * cos(x2 @ W.T @ W_p.T, (x1 @ W.T).detach(), dim=1).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    W, W_p = W.detach().numpy(), W_p.detach().numpy()
    model = integrate_cosine_modes(w0, p0, CosineModeParams(sigma2=SIGMA2), t_end=600.0, n_save=2)
    assert np.linalg.norm(np.diag(W) - model.w[-1]) < 0.05 * np.linalg.norm(model.w[-1])
    assert np.linalg.norm(np.diag(W_p) - model.p[-1]) < 0.05 * np.linalg.norm(model.p[-1])
    assert np.linalg.norm(W - np.diag(np.diag(W))) < 0.1 * np.linalg.norm(W)
    assert np.all(np.abs(model.w[-1][:8]) < 1e-3 * np.abs(model.w[-1]).max()) and np.all(np.abs(np.diag(W)[:8]) < 0.01)


# ---------------------------------------------------------------- SGD (cosine_sgd)

def test_sgd_directions_depend_on_lr_and_weight_decay_only_through_their_product():
    """S1, exactly: SGD (momentum, EMA target, α_p = 3) from (W, W_p) with (lr, wd) and from (W, W_p)/2 with
    (lr/4, 4wd), on the same samples, turns the weights through the same directions."""
    kwargs = dict(ema=0.99, alpha_p=3.0, steps=300, log_every=300)
    first = sgd_cosine(0.2, 0.05, **kwargs)
    second = sgd_cosine(0.05, 0.2, scale=0.5, **kwargs)
    for key in ("W", "W_p", "W_a"):
        np.testing.assert_allclose(first[key] / first[key].norm(), second[key] / second[key].norm(), atol=1e-9)
    assert float(second["W"].norm() / first["W"].norm()) == pytest.approx(0.5, rel=1e-9)


@pytest.mark.parametrize("momentum, ema", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.99)])
def test_angular_update_and_norm_equilibrium_match_real_sgd(momentum, ema):
    """S2 against real SGD at equilibrium: the mean squared angle per step within 3% of 2·lr·wd/(1 + μ); for
    μ = 0 also ‖W‖² = lr·E‖g‖²/(wd(2 − lr·wd)) within 3%, with E‖g‖² measured. Measured: 0.07%, 0.25% and
    0.15% off (and 0.09% for ‖W‖²), means over 1,000 steps each: the 3% bounds leave ×10 room."""
    setting = SGDSetting(lr=0.2, momentum=momentum, ema=ema)
    run = sgd_cosine(setting.lr, 0.05, ema, momentum=momentum, steps=2000, log_every=1)
    assert np.mean(run["angle_sq"]) == pytest.approx(angular_step_sq(setting, 0.05), rel=0.03)
    if momentum == 0:
        assert np.mean(run["w_sq"]) == pytest.approx(equilibrium_norm_sq(0.2, 0.05, np.mean(run["grad_sq"])), rel=0.03)


def test_target_mismatch_is_the_stationary_variance_of_the_lag_recursion():
    """S3 by sympy: the stationary E‖d‖² of d' = m((1 − γ)d + ξ), E‖ξ‖² = δθ², solved symbolically."""
    m, gamma, step_sq, V = sp.symbols("m gamma delta2 V", positive=True)
    stationary = sp.solve(sp.Eq(V, m**2 * (1 - gamma) ** 2 * V + m**2 * step_sq), V)[0]
    setting = SGDSetting(lr=0.2, momentum=0.9, ema=0.97)
    value = stationary.subs({m: 0.97, gamma: 0.03, step_sq: angular_step_sq(setting, 0.1)})
    assert target_mismatch(setting, 0.1, 0.03) == pytest.approx(float(value), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 1.0), st.floats(0.0, 0.99), st.floats(0.5, 0.999), st.floats(0.0, 1.0), st.floats(1e-4, 0.1))
def test_critical_weight_decay_properties(lr, momentum, ema, gamma, weight_decay):
    """S4: at wd_c the mismatch equals D_c; wd_c ∝ 1/lr (S1); it falls as the EMA slows (larger m); SimSiam
    has none; and the measured-coherence route (`restoring_rate`) gives back γ."""
    setting = SGDSetting(lr=lr, momentum=momentum, ema=ema)
    threshold = critical_weight_decay(setting, gamma, 1.0)
    assert target_mismatch(setting, threshold, gamma) == pytest.approx(1.0, rel=1e-9)
    assert critical_weight_decay(SGDSetting(lr=2 * lr, momentum=momentum, ema=ema), gamma, 1.0) == pytest.approx(threshold / 2)
    slower = SGDSetting(lr=lr, momentum=momentum, ema=min(0.9999, ema + 0.5 * (1 - ema)))
    assert critical_weight_decay(slower, gamma, 1.0) < threshold
    assert critical_weight_decay(SGDSetting(lr=lr, momentum=momentum, ema=0.0), gamma, 1.0) == math.inf
    if 1e-3 < gamma < 0.999:
        coherence = target_coherence(setting, weight_decay, gamma)
        if coherence < 1 - 1e-9:
            assert restoring_rate(setting, weight_decay, coherence) == pytest.approx(gamma, rel=1e-4, abs=1e-7)


def gamma_band(setting, weight_decay) -> tuple[float, float, float]:
    """(γ̄ − h, γ̄, γ̄ + h): γ̄ the mean of `restoring_rates` over GAMMA_SEEDS, h = 4·sd/√n with sd its
    measured spread per seed (GAMMA_SD)."""
    mean = float(restoring_rates(setting, weight_decay, GAMMA_SEEDS, GAMMA_LOG_EVERY).mean())
    half = 4 * GAMMA_SD[setting.ema] / math.sqrt(len(GAMMA_SEEDS))
    return mean - half, mean, mean + half


@pytest.fixture(scope="module")
def fit_probe():
    """The target mismatch 1/C² − 1 at the fitted setting at a quarter and at half its threshold, each from
    the mean coherence over GAMMA_SEEDS (brute force)."""
    coherence = {wd: np.mean([np.mean(sgd_cosine(FIT.lr, wd, FIT.ema, seed=seed, log_every=GAMMA_LOG_EVERY)["coherence"])
                              for seed in GAMMA_SEEDS]) for wd in (0.075, 0.15)}
    return {wd: 1 / c**2 - 1 for wd, c in coherence.items()}


def test_target_mismatch_grows_linearly_with_weight_decay(fit_probe):
    """S3 predicts D ∝ δθ² ∝ wd at a fixed γ: doubling wd doubles the measured 1/C² − 1 (within 25%). Over
    12 seeds γ is 0.01863 ± 0.00083 at wd 0.075 and 0.01821 ± 0.00127 at 0.15 (sd per seed): the ratio is
    2.03, and its sd for a mean over two seeds ≈ 3.7%, so 25% is over 6 sd."""
    assert fit_probe[0.15] / fit_probe[0.075] == pytest.approx(2.0, rel=0.25)


def model_and_run_agree(setting, gamma, weight_decay) -> bool:
    """The model's verdict (wd ≥ wd_c of S4, with D_c = LINEAR_CRITICAL_MISMATCH) against real SGD's."""
    predicted = weight_decay >= critical_weight_decay(setting, gamma, LINEAR_CRITICAL_MISMATCH)
    return predicted == collapsed(sgd_cosine(setting.lr, weight_decay, setting.ema, momentum=setting.momentum))


def test_threshold_moves_as_one_over_lr():
    """S4 with D_c fitted at lr 0.2 (threshold 0.311) predicts ≈ 1.27 at lr 0.05 (S1: four times; γ from the
    coherence at lr 0.2, over its whole band γ̄ ± 4·sd/√n). Real SGD at lr 0.05 agrees with the model's verdict
    at wd 0.6 (healthy) and 1.85 (collapsed); a threshold placed at twice the prediction would call 1.85
    healthy, at half it 0.6 collapsed."""
    setting = SGDSetting(lr=0.05, momentum=FIT.momentum, ema=FIT.ema)
    band = gamma_band(FIT, 0.075)
    predicted = [critical_weight_decay(setting, gamma, LINEAR_CRITICAL_MISMATCH) for gamma in band]
    assert predicted[1] == pytest.approx(4 * critical_weight_decay(FIT, band[1], LINEAR_CRITICAL_MISMATCH))
    assert 0.6 < min(predicted) and max(predicted) < 1.85
    assert model_and_run_agree(setting, band[1], 0.6)
    assert model_and_run_agree(setting, band[1], 1.85)


def test_threshold_moves_with_the_ema_as_the_lag_model_says():
    """S4 at m = 0.9 with D_c from m = 0.99 predicts ≈ 1.68 (γ = 0.0341), over five times m = 0.99's. Real SGD
    is healthy at wd 0.75 and collapsed at 1.6 (brute-force bisection puts its threshold near 1.2): the
    prediction is high, by at most 25% of the bracket's top over γ's whole band γ̄ ± 4·sd/√n."""
    setting = SGDSetting(lr=FIT.lr, momentum=FIT.momentum, ema=0.9)
    band = gamma_band(setting, 0.3)
    predicted = [critical_weight_decay(setting, gamma, LINEAR_CRITICAL_MISMATCH) for gamma in band]
    assert 0.75 < min(predicted) and max(predicted) < 1.25 * 1.6
    assert min(predicted) > 3 * critical_weight_decay(FIT, band[2], LINEAR_CRITICAL_MISMATCH)  # a faster EMA tolerates more
    # Effective rank over seeds 0–2 (`python tests/test_linear_cosine_modes.py erank 0.2 WD 0.9 3`): 10.03 ± 0.34
    # at 0.75, 5.9 sd above the cut n2/2 = 8 in one run; 7.08 ± 0.33 at 1.6, so two seeds' mean, 4 sd below it.
    assert not collapsed(sgd_cosine(setting.lr, 0.75, setting.ema, momentum=setting.momentum))
    ranks = [np.mean(sgd_cosine(setting.lr, 1.6, setting.ema, momentum=setting.momentum, seed=seed)["erank"])
             for seed in (0, 1)]
    assert np.mean(ranks) <= N2 / 2


@pytest.mark.parametrize("weight_decay", [0.4665, 1.6])
def test_simsiam_has_no_finite_threshold_where_ema_targets_collapse(weight_decay):
    """Negative control: the model gives SimSiam (m = 0) no threshold, and real SGD stays healthy at 1.5× the
    fitted m = 0.99 threshold (0.311; by S1 the collapsed lr 0.05 run at 1.85 is that setting) and at 1.6,
    where the m = 0.9 run collapses. (Near wd 2, lr·wd 0.4, the linear model degrades even for SimSiam: a
    large-step effect outside the model's δθ² ≪ 1; docs/cosine-model.md.)"""
    setting = SGDSetting(lr=FIT.lr, momentum=FIT.momentum, ema=0.0)
    assert critical_weight_decay(setting, 0.02, LINEAR_CRITICAL_MISMATCH) == math.inf
    assert not collapsed(sgd_cosine(setting.lr, weight_decay, 0.0))


@pytest.mark.parametrize("make, field", [
    (lambda: SGDSetting(lr=0.0), "lr"),
    (lambda: SGDSetting(lr=0.1, momentum=1.0), "momentum"),
    (lambda: SGDSetting(lr=0.1, ema=1.0), "ema"),
    (lambda: CosineModeParams(alpha_p=2.0, predictor_exponent=0.5), "alpha_p"),
    (lambda: CosineModeParams(beta=0.0), "beta"),
    (lambda: critical_weight_decay(FIT, 1.5, 1.0), "restoring_rate"),
    (lambda: integrate_cosine_modes(W0, P0, CosineModeParams(eta=1.0), t_end=20.0), "t_end"),
    (lambda: cosine_gradients([1.0], [0.0], [1.0], 0.0), "w, p, a"),
])
def test_bad_input_names_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


if __name__ == "__main__" and sys.argv[1:] == ["fit"]:
    torch.set_num_threads(1)
    wd_c, gamma, mismatch = fit_critical_mismatch()
    print(f"threshold weight_decay {wd_c:.4g}, restoring rate γ {gamma:.4g}, critical mismatch D_c {mismatch:.4g}")
elif __name__ == "__main__" and sys.argv[1:2] == ["erank"]:  # erank LR WEIGHT_DECAY EMA SEEDS: the verdict's spread
    torch.set_num_threads(1)
    lr, weight_decay, ema, count = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    ranks = np.array([np.mean(sgd_cosine(lr, weight_decay, ema, seed=seed)["erank"]) for seed in range(count)])
    print(f"lr {lr:g} wd {weight_decay:g} ema {ema:g}: erank " + " ".join(f"{r:.3f}" for r in ranks)
          + f"; mean {ranks.mean():.3f}, sd {ranks.std(ddof=1):.3f} (collapsed at <= {N2 / 2:g})")
elif __name__ == "__main__" and sys.argv[1:2] == ["gamma"]:  # gamma EMA WEIGHT_DECAY SEEDS [LOG_EVERY]: γ's spread
    torch.set_num_threads(1)
    ema, weight_decay, count = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    log_every = int(sys.argv[5]) if sys.argv[5:] else None
    rates = restoring_rates(SGDSetting(lr=FIT.lr, momentum=FIT.momentum, ema=ema), weight_decay, range(count), log_every)
    print(" ".join(f"{r:.5f}" for r in rates))
    print(f"γ mean {rates.mean():.5f}, sd {rates.std(ddof=1):.5f}, standard error {rates.std(ddof=1) / count**0.5:.5f}")
