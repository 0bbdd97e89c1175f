"""Runs of the matrix model's gradient flow (Eqs. 2–4) and the facts proved about it (Thms 1–3).

The equations, their Jacobian and the integrator are in `matrix_flow`; the verdicts in `matrix_fate`.
Imports go one way: matrix_flow ← matrix_fate ← run ← matrix_model ← sgd.
"""
from dataclasses import replace

import numpy as np

from linear_dynamics.matrix_fate import flow_fate
from linear_dynamics.matrix_flow import flow_rhs, integrate_flow
from linear_dynamics.params import LinearConfig
from linear_dynamics.run import LinearRun


def initial_state(config: LinearConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, W_p, W_a) at t = 0 from config.seed: W ~ N(0, 1/n1), W_p ~ N(0, init_scale_p²/n2), W_a = W.

    The flow and SGD start from the same matrices, so their trajectories can be compared.
    W_p is symmetrised for `symmetric_predictor` and is the identity without a predictor.
    """
    rng = np.random.default_rng(config.seed)
    W = rng.normal(0.0, 1.0 / np.sqrt(config.n1), (config.n2, config.n1))
    W_p = rng.normal(0.0, config.init_scale_p / np.sqrt(config.n2), (config.n2, config.n2))
    if config.symmetric_predictor:
        W_p = (W_p + W_p.T) / 2
    if not config.predictor:
        W_p = np.eye(config.n2)
    return W, W_p, W.copy()


def simulate_flow(config: LinearConfig, n_save: int = 201, rtol: float = 1e-10, atol: float = 1e-20) -> LinearRun:
    """Integrate Eqs. 2–4 from `initial_state(config)` to config.t_end (`integrate_flow`) and decide the
    verdict (`matrix_fate.flow_fate`, which integrates further when no certificate holds by t_end).

    The tiny absolute tolerance keeps the error control relative while W collapses towards 0, so the
    shape of a collapsing W (its asymmetry and commutator with W_p) stays accurate to the end.
    """
    if isinstance(n_save, bool) or not isinstance(n_save, int) or n_save < 2:
        raise ValueError(f"n_save must be a whole number >= 2, got {n_save!r}")
    state = initial_state(config)
    _, _, unpack = flow_rhs(config, state)
    t = np.linspace(0.0, config.t_end, n_save)
    ys, _ = integrate_flow(config, state, 0.0, t, rtol=rtol, atol=atol)
    W, W_p, W_a = (np.stack(m) for m in zip(*(unpack(y) for y in ys)))
    run = LinearRun(t=t, W=W, W_p=W_p, W_a=W_a, config=config, method="flow", fate=None)
    return replace(run, fate=flow_fate(run))


def balance(W: np.ndarray, W_p: np.ndarray, alpha_p: float) -> np.ndarray:
    """W Wᵀ − α_p⁻¹ W_pᵀ W_p, which Thm 1 says equals e^{−2ηt} C along the flow (with stop-gradient)."""
    return W @ W.T - W_p.T @ W_p / alpha_p


def no_stopgrad_hessian(W_p: np.ndarray, eta: float, X: np.ndarray, X_aug: np.ndarray) -> np.ndarray:
    """H = X' ⊗ (W_pᵀW_p + I) + X ⊗ W̃_pᵀW̃_p + ηI (Thm 2): without stop-gradient, d vec(W)/dt = −H vec(W).

    vec stacks columns (vec(A W B) = (Bᵀ ⊗ A) vec(W)), i.e. `W.ravel(order="F")`. H ⪰ 0 whenever
    X, X' ⪰ 0, so ‖W‖ can only shrink, and shrinks to 0 when H's smallest eigenvalue stays positive.
    """
    n2 = W_p.shape[0]
    W_tilde = W_p - np.eye(n2)
    return (np.kron(X_aug, W_p.T @ W_p + np.eye(n2)) + np.kron(X, W_tilde.T @ W_tilde)
            + eta * np.eye(n2 * X.shape[0]))


def alignment_K(F: np.ndarray, W_p: np.ndarray, alpha_p: float, eta: float, sigma2: float, tau: float) -> np.ndarray:
    """K = (1+σ²)[(α_p/2) F + W_p² − τ/(1+σ²) W_p] + (3/2) η I (Thm 3).

    Under A1–A3, d[F, W_p]/dt = −[F, W_p] K − K [F, W_p]: the commutator decays when K ≻ 0.
    """
    k = 1 + sigma2
    return k * (alpha_p / 2 * F + W_p @ W_p - tau / k * W_p) + 1.5 * eta * np.eye(F.shape[0])


def symmetric_predictor_fixed_point(F: np.ndarray, alpha_p: float, eta: float, sigma2: float, tau: float) -> np.ndarray:
    """W_p = τ Λ[(1+σ²)Λ + (η/α_p) I]⁻¹ in F's eigenbasis (F = U Λ Uᵀ): where dW_p/dt = 0 for a
    symmetric predictor commuting with F, W held fixed (SPEC §2, from Eq. 2 with W_a = τW)."""
    values, U = np.linalg.eigh(F)
    denominator = (1 + sigma2) * values + eta / alpha_p
    p = np.divide(tau * values, denominator, out=np.zeros_like(values), where=denominator != 0)
    return U @ np.diag(p) @ U.T
