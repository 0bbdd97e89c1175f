"""The right-hand side of the matrix model's gradient flow (Eqs. 2–4), its Jacobian and the integrator.

Loss J = ½ E‖W_p W x1 − StopGrad(W_a x2)‖² with X = E[x̄x̄ᵀ] = I and X' = σ²I (assumption A2), so
E[x1 x1ᵀ] = (1+σ²)I and E[x1 x2ᵀ] = I. With G = −W_p W (X + X') + W_a X:
    dW_p/dt = α_p G Wᵀ − η W_p          (Eq. 2)
    dW/dt   = W_pᵀ G − η W              (Eq. 3)
    dW_a/dt = β (W − W_a)               (Eq. 4; SimSiam: W_a ≡ W)
Without stop-gradient the target branch is W and J is differentiated through it too:
    dW/dt = −(W_pᵀW_p + I) W X' − W̃_pᵀW̃_p W X − η W,  W̃_p = W_p − I   (Thm 2).
The verdicts (`matrix_fate`) and the runs (`matrix_model`, `sgd`) build on this module, which imports
neither of them.
"""
import numpy as np
from scipy.integrate import DOP853, Radau

from linear_dynamics.params import LinearConfig

EXPLICIT_STEPS = 1000  # DOP853 steps in one `integrate_flow` call before Radau takes over
# Radau's absolute tolerance: implicit iterations cannot meet DOP853's 1e-20 on components near 0 (LSODA
# took 90,000 steps for t ≤ 1 at α_p = 1e4, against 500 at 1e-12); entries below it lose relative accuracy.
IMPLICIT_ATOL = 1e-12
# Radau holds the dense Jacobian of the N = 2·n1·n2 + n2² state entries and its real and complex LU
# factors (32 bytes per entry of N²), and `matrix_jacobian` builds it from dense Kronecker blocks and
# commutation matrices: peaks of 80 N² bytes at n1 = n2 = 16 and 58 N² at n1 = n2 = 24 (EMA), measured
# with tracemalloc. Over the budget (N > 4,472, e.g. n1 = n2 = 39) the explicit solver goes on while it is
# fast enough, else a one-line error; n1 = n2 = 128 would need 240 GB.
IMPLICIT_BYTES_PER_ENTRY = 100
IMPLICIT_MEMORY_BUDGET = 2 * 10**9  # bytes
EXPLICIT_STEPS_OVER_BUDGET = 20 * EXPLICIT_STEPS  # steps DOP853 may still need when Radau does not fit
ZERO_FLOOR = 1e-150  # every entry of W and W_a below this: the run is continued on the invariant W = W_a = 0


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
    tolerance IMPLICIT_ATOL). When Radau would need more memory than IMPLICIT_MEMORY_BUDGET, DOP853 goes
    on as long as its recent steps would reach t_eval[-1] within EXPLICIT_STEPS_OVER_BUDGET more, else a
    ValueError (one line; nothing large is allocated). LSODA, handed a stiff problem midway, stayed in its explicit mode, and BDF
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
        if steps % EXPLICIT_STEPS == 0 and solver.status == "running" and isinstance(solver, DOP853):
            need = IMPLICIT_BYTES_PER_ENTRY * solver.y.size**2
            if need <= IMPLICIT_MEMORY_BUDGET:
                evaluations += solver.nfev
                solver = Radau(rhs, solver.t, solver.y, t_eval[-1], rtol=rtol, atol=max(atol, IMPLICIT_ATOL),
                               jac=lambda _, y: matrix_jacobian(*unpack(y), config))
                continue
            # Over the budget DOP853 goes on while the steps it has been taking would finish the horizon in
            # EXPLICIT_STEPS_OVER_BUDGET more (re-checked every EXPLICIT_STEPS steps).
            remaining = (t_eval[-1] - solver.t) / ((solver.t - t0) / steps)
            if remaining > EXPLICIT_STEPS_OVER_BUDGET:
                raise ValueError(f"n1, n2: the flow is stiff at t = {solver.t:.4g} (about {remaining:.2g} more explicit steps "
                                 f"to t = {t_eval[-1]:.4g}) and its implicit solver (a dense Jacobian of {solver.y.size}² "
                                 f"entries) would need about {need / 1e9:.3g} GB, over the budget of "
                                 f"{IMPLICIT_MEMORY_BUDGET / 1e9:g} GB; lower n1 and n2 (2·n1·n2 + n2² <= "
                                 f"{int((IMPLICIT_MEMORY_BUDGET / IMPLICIT_BYTES_PER_ENTRY) ** 0.5)}), alpha_p or sigma2 "
                                 f"(which make it stiff) or t_end, or run --sgd")
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the matrix flow left the finite numbers")
    return np.array(out), evaluations + solver.nfev
