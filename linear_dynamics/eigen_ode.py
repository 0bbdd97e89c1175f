"""Eigenvalue dynamics of the linear model (Eqs. 11–13), integrated for many modes at once.

After the eigenspaces of W_p and F align (Thm 3), each mode j is three numbers: p_j (eigenvalue of
W_p), s_j (eigenvalue of F = W X Wᵀ) and the target ratio τ (W_a = τW, assumption A1). With
k = 1 + σ²:
    dp/dt = α_p s (τ − k p) − η p                        (Eq. 11)
    ds/dt = 2 p s (τ − k p) − 2η s                        (Eq. 12)
    dτ/dt = β(1 − τ) − τ (ds/dt)/(2s)                     (Eq. 13)
          = β(1 − τ) − τ [p(τ − k p) − η]                 (the same, without dividing by s)
With a fixed τ (SimSiam: τ ≡ 1) Eq. 13 is switched off, and the integrator follows (p, ln s):
    d ln s/dt = 2 [p(τ − k p) − η]                        (Eq. 12 divided by s)
so that s keeps its relative accuracy however small it gets. Whether a mode sliding along s ≈ 0
comes back past the saddle depends on s far below any absolute tolerance. s = 0 is invariant
(Eq. 12): there p = p(0) e^{−ηt} exactly.

Eq. 14 (appendix sign): s(t) − p(t)²/α_p = c e^{−2ηt}, c = s(0) − p(0)²/α_p, for any τ(t).

With EMA, Eq. 13 is singular where the mode of W passes through zero: for p < 0 the term −pτ² makes
τ = W_a/W blow up in finite time. The integrator therefore follows the same dynamics in the mode's
own coordinates, w (s = w²) and a = τw (the target's component), where nothing is singular:
    dp/dt = α_p w (a − k p w) − η p,  dw/dt = p (a − k p w) − η w,  da/dt = β (w − a)   (Eq. 4),
which give back Eqs. 11–13 wherever w ≠ 0 (s = w², τ = a/w; reported as NaN on collapsed modes).

Verdicts report each mode's fate, not a snapshot at t_end: 'collapsed' or 'non-collapsed' once the
mode is in a region of an attractor that it does not leave (checked at the saved times, then past t_end
on the undecided modes only), 'undecided' if that has not happened by a generous cap; see `fate`.
Stiff modes (α_p s ≫ η, say) are handed to an implicit solver with the Jacobians below (`batched_rk`).
"""
from dataclasses import dataclass

import numpy as np

from linear_dynamics.batched_rk import solve_batched
from linear_dynamics.fate import COLLAPSED, decide_fates
from linear_dynamics.params import MAX_VALUE, EigenParams, check_positive

COLLAPSE_TOL = 1e-6  # with EMA, τ = W_a/W is reported as NaN where s ≤ this (W has all but vanished)
EMA_FLOOR = 1e-300  # absolute tolerance of w and a with EMA: their error control stays relative


def eigen_rhs(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """Right-hand side of Eqs. 11–13 for a (2 or 3, n) array of rows (p, s[, τ]); τ only with EMA."""
    k = 1 + params.sigma2
    p, s = state[0], state[1]
    tau = state[2] if params.ema else params.tau
    growth = p * (tau - k * p) - params.eta  # (ds/dt)/(2s)
    dp = params.alpha_p * s * (tau - k * p) - params.eta * p
    ds = 2 * s * growth
    if not params.ema:
        return np.stack([dp, ds])
    return np.stack([dp, ds, params.beta * (1 - tau) - tau * growth])


def log_s_rhs(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """Eqs. 11–12 at a fixed τ for a (2, n) array of rows (p, ln s)."""
    k = 1 + params.sigma2
    p, s = state[0], np.exp(state[1])
    return np.stack([params.alpha_p * s * (params.tau - k * p) - params.eta * p,
                     2 * (p * (params.tau - k * p) - params.eta)])


def ema_mode_rhs(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """Eqs. 11–13 with EMA in the regular coordinates (p, w, a) of one mode: s = w², τ = a/w."""
    k = 1 + params.sigma2
    p, w, a = state
    drive = a - k * p * w  # s(τ − kp)/w: the target minus the prediction along this mode
    return np.stack([params.alpha_p * w * drive - params.eta * p, p * drive - params.eta * w, params.beta * (w - a)])


def log_s_jacobian(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """∂(`log_s_rhs`)/∂(p, ln s): shape (2, 2, n), for the implicit solver on stiff modes."""
    k = 1 + params.sigma2
    p, s = state[0], np.exp(state[1])
    zero = np.zeros_like(p)
    return np.array([[-params.alpha_p * k * s - params.eta, params.alpha_p * s * (params.tau - k * p)],
                     [2 * (params.tau - 2 * k * p), zero]])


def ema_mode_jacobian(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """∂(`ema_mode_rhs`)/∂(p, w, a): shape (3, 3, n); `fixed_points.ema_jacobian` column by column."""
    k, alpha_p, eta, beta = 1 + params.sigma2, params.alpha_p, params.eta, params.beta
    p, w, a = state
    drive = a - 2 * k * p * w
    zero = np.zeros_like(p)
    return np.array([[-alpha_p * k * w**2 - eta, alpha_p * drive, alpha_p * w],
                     [drive, -k * p**2 - eta, p],
                     [zero, zero + beta, zero - beta]])


def parabola_offset(t, p0, s0, alpha_p: float, eta: float):
    """c e^{−2ηt}, the predicted s(t) − p(t)²/α_p (Eq. 14 with the appendix's sign)."""
    return (np.asarray(s0) - np.asarray(p0) ** 2 / alpha_p) * np.exp(-2 * eta * np.asarray(t))


@dataclass(frozen=True)
class EigenTrajectories:
    """Solutions of Eqs. 11–13: arrays of shape (len(t), n_modes), one column per initial state, and
    each mode's fate (`fate.decide_fates`): verdict 'collapsed' | 'non-collapsed' | 'undecided', the
    name of the fixed point or line it converges to (None if undecided), the time t_decided from
    which that was certain (NaN if undecided; may lie beyond t_end), and the basis of the verdict,
    'theorem' (a proved trapping region) or 'numerical' (a tolerance; EMA at η = 0 near the line
    p = 1/k), None if undecided."""

    t: np.ndarray
    p: np.ndarray
    s: np.ndarray
    tau: np.ndarray
    params: EigenParams
    verdicts: tuple[str, ...]
    fixed_point: tuple[str | None, ...]
    t_decided: np.ndarray
    basis: tuple[str | None, ...]
    collapse_tol: float = COLLAPSE_TOL

    @property
    def collapsed(self) -> np.ndarray:
        """Boolean per mode: the verdict is 'collapsed' (False for 'undecided')."""
        return np.array([v == COLLAPSED for v in self.verdicts])

    @property
    def final(self) -> dict[str, np.ndarray]:
        return {"p": self.p[-1], "s": self.s[-1], "tau": self.tau[-1]}


def integrate_eigen(p0, s0, params: EigenParams, t_end: float, tau0=None, n_save: int = 201,
                    rtol: float = 1e-10, atol: float = 1e-12,
                    collapse_tol: float = COLLAPSE_TOL) -> EigenTrajectories:
    """Integrate Eqs. 11–13 for every initial state at once (one vectorised solver call).

    p0, s0 (and tau0 with EMA, default 1 = W_a(0) = W(0)) are scalars or 1-D arrays, broadcast
    together; s0 ≥ 0 since s is an eigenvalue of the PSD matrix F (> 0 with EMA, where τ = W_a/W
    needs W ≠ 0). The solution is saved at n_save evenly spaced times from 0 to t_end; the fates are
    decided at those times and, for modes still undecided at t_end, by integrating them further.
    """
    check_positive("t_end", t_end)
    check_positive("collapse_tol", collapse_tol)
    if isinstance(n_save, bool) or not isinstance(n_save, int) or n_save < 2:
        raise ValueError(f"n_save must be a whole number >= 2, got {n_save!r}")
    if tau0 is not None and not params.ema:
        raise ValueError("tau0: only with beta (EMA); with a fixed tau the ratio does not move")
    initial = [np.asarray(p0, dtype=float), np.asarray(s0, dtype=float)]
    if params.ema:
        initial.append(np.asarray(1.0 if tau0 is None else tau0, dtype=float))
    initial = [np.atleast_1d(a) for a in np.broadcast_arrays(*initial)]
    for name, arr in zip(("p0", "s0", "tau0"), initial):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        if np.any(np.abs(arr) > MAX_VALUE):
            raise ValueError(f"{name} must be at most {MAX_VALUE:g} in size (rescale the weights), got {np.abs(arr).max():g}")
    if np.any(initial[1] < 0):
        raise ValueError("s0 must be >= 0 (an eigenvalue of F = W X Wᵀ)")
    t = np.linspace(0.0, t_end, n_save)
    if not params.ema:
        def rhs(state):
            return log_s_rhs(state, params)

        def jacobian(state):
            return log_s_jacobian(state, params)

        p0, s0 = initial
        alive = s0 > 0
        y = np.empty((n_save, 2, p0.size))
        y[:, 0, ~alive] = np.exp(-params.eta * t)[:, None] * p0[~alive]  # s ≡ 0: dp/dt = −ηp
        y[:, 1, ~alive] = -np.inf
        y[:, :, alive] = solve_batched(rhs, np.stack([p0[alive], np.log(s0[alive])]), t, rtol=rtol, atol=atol,
                                       jacobian=jacobian)
        fate = decide_fates(t, y, rhs, params, rtol=rtol, atol=atol, jacobian=jacobian)
        return EigenTrajectories(t=t, p=y[:, 0], s=np.exp(y[:, 1]), tau=np.full_like(y[:, 0], params.tau),
                                 params=params, verdicts=fate.verdicts, fixed_point=fate.fixed_point,
                                 t_decided=fate.t_decided, basis=fate.basis, collapse_tol=collapse_tol)
    p0, s0, tau0 = initial
    if np.any(s0 <= 0):
        raise ValueError("s0 must be > 0 with beta (tau = W_a/W is undefined where W = 0)")
    if np.any(tau0 < 0):
        raise ValueError("tau0 must be >= 0")
    w0 = np.sqrt(s0)

    def rhs(state):
        return ema_mode_rhs(state, params)

    def jacobian(state):
        return ema_mode_jacobian(state, params)

    # Relative error control on w and a down to the smallest floats: whether a mode whose W has all but
    # vanished comes back past p₋ depends on how small it got (as for ln s at a fixed τ).
    atol_rows = np.array([atol, EMA_FLOOR, EMA_FLOOR])
    y = solve_batched(rhs, np.stack([p0, w0, tau0 * w0]), t, rtol=rtol, atol=atol_rows, jacobian=jacobian)
    fate = decide_fates(t, y, rhs, params, rtol=rtol, atol=atol_rows, jacobian=jacobian)
    p, w, a = y[:, 0], y[:, 1], y[:, 2]
    # τ = W_a/W means nothing once W has collapsed (a/w would then be a ratio of solver noise):
    # it is NaN wherever s ≤ collapse_tol.
    tau = np.divide(a, w, out=np.full_like(a, np.nan), where=w**2 > collapse_tol)
    return EigenTrajectories(t=t, p=p, s=w**2, tau=tau, params=params, verdicts=fate.verdicts,
                             fixed_point=fate.fixed_point, t_decided=fate.t_decided, basis=fate.basis,
                             collapse_tol=collapse_tol)
