"""Gradient flow of the matrix model (Eqs. 2–4) and the facts proved about it (Thms 1–3).

Loss J = ½ E‖W_p W x1 − StopGrad(W_a x2)‖² with X = E[x̄x̄ᵀ] = I and X' = σ²I (assumption A2), so
E[x1 x1ᵀ] = (1+σ²)I and E[x1 x2ᵀ] = I. With G = −W_p W (X + X') + W_a X:
    dW_p/dt = α_p G Wᵀ − η W_p          (Eq. 2)
    dW/dt   = W_pᵀ G − η W              (Eq. 3)
    dW_a/dt = β (W − W_a)               (Eq. 4; SimSiam: W_a ≡ W)
Without stop-gradient the target branch is W and J is differentiated through it too:
    dW/dt = −(W_pᵀW_p + I) W X' − W̃_pᵀW̃_p W X − η W,  W̃_p = W_p − I   (Thm 2).
"""
from dataclasses import replace

import numpy as np
from scipy.integrate import DOP853, Radau

from linear_dynamics.matrix_fate import flow_fate
from linear_dynamics.params import LinearConfig
from linear_dynamics.run import LinearRun

EXPLICIT_STEPS = 1000  # DOP853 steps in one `integrate_flow` call before Radau takes over
# Radau's absolute tolerance: implicit iterations cannot meet DOP853's 1e-20 on components near 0 (LSODA
# took 90,000 steps for t ≤ 1 at α_p = 1e4, against 500 at 1e-12); entries below it lose relative accuracy.
IMPLICIT_ATOL = 1e-12
ZERO_FLOOR = 1e-150  # every entry of W and W_a below this: the run is continued on the invariant W = W_a = 0


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


def matrix_rhs(W: np.ndarray, W_p: np.ndarray, W_a: np.ndarray, config: LinearConfig):
    """(dW/dt, dW_p/dt, dW_a/dt) of Eqs. 2–4 for the variant `config` describes."""
    k = 1 + config.sigma2
    target = W_a if config.ema else W
    G = target - k * W_p @ W
    if config.stop_grad:
        dW = W_p.T @ G - config.eta * W
    else:
        W_tilde = W_p - np.eye(config.n2)
        dW = -config.sigma2 * (W_p.T @ W_p + np.eye(config.n2)) @ W - W_tilde.T @ W_tilde @ W - config.eta * W
    if config.predictor:
        dW_p = config.alpha_p * G @ W.T - config.eta * W_p
        if config.symmetric_predictor:
            dW_p = (dW_p + dW_p.T) / 2  # projection onto symmetric matrices keeps A3 exact
    else:
        dW_p = np.zeros_like(W_p)
    dW_a = config.beta * (W - W_a) if config.ema else dW
    return dW, dW_p, dW_a


def _commutation(rows: int, cols: int) -> np.ndarray:
    """K with K vec(X) = vec(Xᵀ) for X of shape (rows, cols), vec row-major (numpy's ravel)."""
    K = np.zeros((rows * cols, rows * cols))
    i, j = np.divmod(np.arange(rows * cols), cols)
    K[j * rows + i, i * cols + j] = 1.0
    return K


def matrix_jacobian(W: np.ndarray, W_p: np.ndarray, W_a: np.ndarray, config: LinearConfig) -> np.ndarray:
    """∂(dW, dW_p, dW_a)/∂(W, W_p, W_a) of `matrix_rhs`, for the row-major vectors of the three matrices
    stacked in that order (as `flow_rhs` packs them); uses vec(AXB) = (A ⊗ Bᵀ) vec(X). For the implicit
    part of the integrator: a large α_p makes W_p relax at rate α_p(1+σ²)λ(WWᵀ), far faster than W."""
    n2, n1 = W.shape
    k, eta = 1 + config.sigma2, config.eta
    I1, I2 = np.eye(n1), np.eye(n2)
    K_W, K_p = _commutation(n2, n1), _commutation(n2, n2)
    target = W_a if config.ema else W
    G = target - k * W_p @ W
    d_target = 0.0 if config.ema else 1.0  # ∂target/∂W
    if config.stop_grad:
        dW_dW = d_target * np.kron(W_p.T, I1) - k * np.kron(W_p.T @ W_p, I1) - eta * np.eye(n2 * n1)
        dW_dP = np.kron(I2, G.T) @ K_p - k * np.kron(W_p.T, W.T)
        dW_dA = np.kron(W_p.T, I1) if config.ema else np.zeros((n2 * n1, n2 * n1))
    else:
        M = config.sigma2 * W_p + (W_p - I2)
        S = config.sigma2 * (W_p.T @ W_p + I2) + (W_p - I2).T @ (W_p - I2)
        dW_dW = -np.kron(S + eta * I2, I1)
        dW_dP = -(np.kron(I2, (M @ W).T) @ K_p + np.kron(M.T, W.T))
        dW_dA = np.zeros((n2 * n1, n2 * n1))
    if config.predictor:
        dP_dW = config.alpha_p * (d_target * np.kron(I2, W) + np.kron(target, I2) @ K_W
                                  - k * np.kron(W_p, W) - k * np.kron(W_p @ W, I2) @ K_W)
        dP_dP = -config.alpha_p * k * np.kron(I2, W @ W.T) - eta * np.eye(n2 * n2)
        dP_dA = config.alpha_p * np.kron(I2, W) if config.ema else np.zeros((n2 * n2, n2 * n1))
        if config.symmetric_predictor:
            project = (np.eye(n2 * n2) + K_p) / 2
            dP_dW, dP_dP, dP_dA = project @ dP_dW, project @ dP_dP, project @ dP_dA
    else:
        dP_dW, dP_dP, dP_dA = np.zeros((n2 * n2, n2 * n1)), np.zeros((n2 * n2, n2 * n2)), np.zeros((n2 * n2, n2 * n1))
    if config.ema:
        dA = [config.beta * np.eye(n2 * n1), np.zeros((n2 * n1, n2 * n2)), -config.beta * np.eye(n2 * n1)]
    else:  # SimSiam: W_a is W, and moves with it
        dA = [dW_dW, dW_dP, dW_dA]
    return np.block([[dW_dW, dW_dP, dW_dA], [dP_dW, dP_dP, dP_dA], dA])


def flow_rhs(config: LinearConfig, state):
    """(rhs(t, y), pack(W, W_p, W_a) -> y, unpack(y) -> [W, W_p, W_a]) of Eqs. 2–4 for solve_ivp, for
    matrices shaped like those of `state`."""
    shapes = [m.shape for m in state]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(y):
        parts = np.split(y, np.cumsum(sizes)[:-1])
        return [part.reshape(shape) for part, shape in zip(parts, shapes)]

    def pack(*matrices):
        return np.concatenate([m.ravel() for m in matrices])

    def rhs(_, y):
        return pack(*matrix_rhs(*unpack(y), config))

    return rhs, pack, unpack


def integrate_flow(config: LinearConfig, state, t0: float, t_eval: np.ndarray, rtol: float = 1e-10,
                   atol: float = 1e-20) -> tuple[np.ndarray, int]:
    """Eqs. 2–4 from state = (W, W_p, W_a) at t0, saved at the increasing times t_eval ≥ t0: the packed
    states (len(t_eval), size) and the number of right-hand-side evaluations.

    scipy's DOP853 (with its 7th-order dense output at t_eval, as `solve_ivp` does); after
    EXPLICIT_STEPS steps in one call, which an explicit method needs only when the problem is stiff (a
    large α_p or σ²: W_p relaxes at rate α_p(1+σ²)λ(WWᵀ) while W moves at rates of order η and 1) or the
    horizon very long, the rest goes to Radau IIA (implicit, order 5) with `matrix_jacobian` (absolute
    tolerance IMPLICIT_ATOL). LSODA, handed a stiff problem midway, stayed in its explicit mode, and BDF
    stopped (step size underflow) in a plain steady state at t ≈ 2·10⁴; Radau did neither. Once every
    entry of W and W_a is below ZERO_FLOOR the rest follows the exact solution on W = W_a = 0 (invariant).
    """
    rhs, pack, unpack = flow_rhs(config, state)
    t_eval = np.asarray(t_eval, dtype=float)
    solver = DOP853(rhs, t0, pack(*state), t_eval[-1], rtol=rtol, atol=atol)
    out, evaluations, steps = [], 0, 0
    while len(out) < t_eval.size and t_eval[len(out)] <= t0:
        out.append(solver.y.copy())
    while len(out) < t_eval.size:
        W, W_p, W_a = unpack(solver.y)
        if max(np.abs(W).max(), np.abs(W_a).max()) < ZERO_FLOOR:
            # W = W_a = 0 is invariant and there dW_p/dt = −ηW_p (W_p ≡ I without a predictor): the rest
            # is exact, and the integrator is spared the denormal floats W would run into.
            decay = np.exp(-config.eta * (t_eval[len(out):] - solver.t)) if config.predictor else np.ones(t_eval.size - len(out))
            out += [pack(np.zeros_like(W), W_p * factor, np.zeros_like(W_a)) for factor in decay]
            break
        with np.errstate(over="ignore", invalid="ignore"):  # a rejected trial step may overflow
            solver.step()
        if solver.status == "failed":
            raise FloatingPointError(f"the matrix flow failed at t = {solver.t:.6g}; the weights may have blown up")
        steps += 1
        dense = solver.dense_output()
        while len(out) < t_eval.size and t_eval[len(out)] <= solver.t:
            out.append(dense(t_eval[len(out)]))
        if steps == EXPLICIT_STEPS and solver.status == "running":
            evaluations += solver.nfev
            solver = Radau(rhs, solver.t, solver.y, t_eval[-1], rtol=rtol, atol=max(atol, IMPLICIT_ATOL),
                           jac=lambda _, y: matrix_jacobian(*unpack(y), config))
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the matrix flow left the finite numbers")
    return np.array(out), evaluations + solver.nfev


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
