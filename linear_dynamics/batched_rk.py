"""Dormand–Prince 5(4) with one adaptive step size per trajectory, vectorised over trajectories, and a
hand-over to an implicit method (Radau IIA) for trajectories that turn stiff.

`scipy.integrate.solve_ivp` on a stacked system would force one step size on every trajectory and
measure the error over all of them at once; here each column of the state keeps its own time, step
size and error test, and every numpy operation still runs on all unfinished columns together. The
right-hand side must be autonomous (true of Eqs. 2–4 and 11–13). The Butcher tableau is Dormand &
Prince (1980); the step-size controller and the starting step follow Hairer, Nørsett & Wanner,
Solving ODEs I, Sec. II.4.

Stiffness (e.g. α_p s ≫ η in Eqs. 11–12: p relaxes in 1/(α_p s) while s moves in 1/η) caps an explicit
step at about 3.3/|λ| for the Jacobian's largest eigenvalue λ, whatever the accuracy asks for. The test
of Hairer's DOPRI5 code (Hairer & Wanner, Solving ODEs II, Sec. IV.2) detects it: stages 6 and 7 are
both taken at t + h, so h‖k₇ − k₆‖/‖y₇ − y₆‖ (in the error test's scaled norm) estimates h|λ|; after
STIFF_STEPS accepted steps in a row with h|λ| > STIFF_TEST (0.5, not Hairer's 3.25: see there), while
more than WORTH_IMPLICIT explicit steps remain, the column is finished by `scipy.integrate.Radau` (an
implicit 5th-order method, stable for any step), with the analytic Jacobian when one is given. Its steps
count against a budget of their own (`max_implicit_steps`, shared by the columns), so that a trajectory
Radau can only follow in tiny steps (a weight decay of 10⁻¹⁵⁰ asks for times near 10¹⁵⁰) ends in the
budget's RuntimeError instead of running without end.
"""
import numpy as np
from scipy.integrate import Radau

# Nodes are not needed (autonomous right-hand side); rows of A and the two weight vectors.
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)  # 5th order; also row 7 of A (FSAL)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5 + (0.0,), _B4))  # y5 − y4 = h Σ E_i k_i

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
# A step counts as stiff where h|λ| > STIFF_TEST, well inside the boundary of DOPRI5's stability region
# along the negative axis (h|λ| ≈ 3.3). Accuracy alone keeps h|λ| near (720 rtol)^{1/6} (DOPRI5's local
# error ~ (hλ)⁶/720): 0.07 at rtol 10⁻¹⁰, 0.14 at 10⁻⁸. h|λ| > 0.5 for STIFF_STEPS steps running means
# the fast component is slaved, not resolved. Measured on a stiff EMA mode (w slaved to a/(kp): w ~ 10⁻⁸
# beside p ~ 300, 10⁻¹⁴ beside 60, 10⁻¹⁶ beside 30) the controller settles at h|λ| ≈ 3.0–3.3, at 1.45,
# and at 0.82–0.93, each with the error at 0.59 of the tolerance: Hairer's test (> 3.25) missed all
# three, a test at 1 the last (the verdict then hung on t_end).
STIFF_TEST = 0.5
# Radau runs column by column in Python (~1 ms a step): a column goes to it only while it has more than
# this many explicit steps of its current size left. Without this, 40% of the benchmark's 10⁴ fixed-τ
# modes (h|λ| ≈ 1–3 near p₊, a hundred steps from the end) went to Radau: 68 s instead of 1 s.
WORTH_IMPLICIT = 500
STIFF_STEPS, CALM_STEPS = 15, 6  # DOPRI5's counters: 15 stiff steps in a row hand over; 6 calm ones reset


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x * x, axis=0))


def _initial_step(rhs, y, f, rtol, atol):
    """Hairer's starting-step heuristic, per column.

    Entries that start at exactly 0 are left out of the slope norms: under a tiny absolute tolerance
    (relative error control down to 10⁻³⁰⁰) any first move of theirs is "infinitely" large against
    their own size, which would pick a step of 10⁻²⁹⁰ (or, overflowing, NaN and a solver that never
    moves). The error test of each step measures them against their new value instead.
    """
    scale = atol + rtol * np.abs(y)
    moving = y != 0
    d0, d1 = _rms(y / scale), _rms(np.divide(f, scale, out=np.zeros_like(f), where=moving))
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, 1e-300))
    d2 = _rms(np.divide(rhs(y + h0 * f) - f, scale, out=np.zeros_like(f), where=moving)) / h0
    big = np.maximum(d1, d2)
    h1 = np.where(big <= 1e-15, np.maximum(1e-6, h0 * 1e-3), (0.01 / np.maximum(big, 1e-300)) ** 0.2)
    return np.minimum(100 * h0, h1)


def _finish_implicitly(rhs, jacobian, t0: float, y0: np.ndarray, t_eval: np.ndarray, rtol: float, atol: np.ndarray,
                       max_steps: int) -> tuple[np.ndarray, int]:
    """One column from (t0, y0) through the save times t_eval with Radau IIA, in at most max_steps steps:
    ((len(t_eval), d) states read from each step's dense output, the steps taken); RuntimeError past the
    budget, FloatingPointError where Radau fails."""
    def fun(_, y):
        return rhs(y[:, None])[:, 0]

    jac = None if jacobian is None else (lambda _, y: jacobian(y[:, None])[:, :, 0])
    solver = Radau(fun, t0, y0, float(t_eval[-1]), rtol=rtol, atol=atol[:, 0], jac=jac)
    out, saved = np.empty((t_eval.size, y0.size)), 0
    for steps in range(1, max_steps + 1):
        message = solver.step()
        if solver.status == "failed":
            raise FloatingPointError(f"the implicit solver (Radau) failed on a stiff trajectory: {message}")
        reached = int(np.searchsorted(t_eval, solver.t, side="right"))
        if reached > saved:
            out[saved:reached] = solver.dense_output()(t_eval[saved:reached]).T
            saved = reached
        if solver.status == "finished":
            return out, steps
    raise RuntimeError(f"solve_batched did not reach the end in {max_steps} implicit (Radau) steps")


def solve_batched(rhs, y0: np.ndarray, t_save: np.ndarray, rtol: float = 1e-10, atol=1e-12,
                  max_iterations: int = 1_000_000, jacobian=None, max_implicit_steps: int | None = None) -> np.ndarray:
    """Integrate dy/dt = rhs(y) from t = 0 for every column of y0 (shape (d, n)).

    atol is one absolute tolerance, or one per row (shape (d,)): a tiny one keeps a row's error control
    relative while it decays towards 0.
    rhs maps a (d, m) array to a (d, m) array, column by column; jacobian (optional) maps it to the
    (d, d, m) array of ∂rhs_i/∂y_j, used only on columns handed to Radau. Returns y at each time of
    t_save (non-decreasing, ≥ 0): shape (len(t_save), d, n). Explicit steps are shortened to land on
    the save times exactly, so no interpolation error is added. max_iterations caps the explicit steps,
    max_implicit_steps (default max_iterations) Radau's over all columns; past either, RuntimeError.
    """
    y = np.array(y0, dtype=float)
    t_save = np.asarray(t_save, dtype=float)
    if y.ndim != 2:
        raise ValueError(f"y0 must have shape (d, n), got {y.shape}")
    if t_save.ndim != 1 or t_save.size == 0 or t_save[0] < 0 or np.any(np.diff(t_save) < 0):
        raise ValueError("t_save must be a non-empty, non-decreasing array of times >= 0")
    d, n = y.shape
    atol = np.broadcast_to(np.asarray(atol, dtype=float).reshape(-1, 1), (d, 1))
    out = np.empty((t_save.size, d, n))
    n_at_start = int(np.searchsorted(t_save, 0.0, side="right"))
    out[:n_at_start] = y
    if n_at_start == t_save.size:
        return out
    next_save = np.full(n, n_at_start)
    t = np.zeros(n)
    stiff_run, calm_run = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    k1 = rhs(y)
    h = _initial_step(rhs, y, k1, rtol, atol)
    implicit_left = max_iterations if max_implicit_steps is None else max_implicit_steps
    for _ in range(max_iterations):
        idx = np.flatnonzero(next_save < t_save.size)
        if idx.size == 0:
            return out
        ti, yi, k = t[idx], y[:, idx], [k1[:, idx]]
        target = t_save[next_save[idx]]
        hits = h[idx] >= target - ti
        step = np.where(hits, target - ti, h[idx])
        # A step too long for the dynamics may overflow; its error norm is then not finite and it is
        # rejected below, so the floating-point warnings say nothing.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for row in _A[1:]:
                stage = yi + step * sum(a * kj for a, kj in zip(row, k) if a)
                k.append(rhs(stage))
            y5 = yi + step * sum(b * kj for b, kj in zip(_B5, k) if b)
            k.append(rhs(y5))
            err = step * sum(e * kj for e, kj in zip(_E, k) if e)
            scale = atol + rtol * np.maximum(np.abs(yi), np.abs(y5))
            err_norm = _rms(err / scale)
            # `stage` is the argument of stage 6; y5 that of stage 7 (both at t + h). Measured in the
            # error test's scaled norm (the eigenvalues of D⁻¹JD are J's): in the plain norm a stiff
            # row whose values are tiny (w ~ 10⁻⁸ beside p ~ 300 with EMA) goes unseen.
            h_lambda = step * _rms((k[6] - k[5]) / scale) / _rms((y5 - stage) / scale)
        if not np.all(np.isfinite(y5[:, err_norm <= 1])):
            raise FloatingPointError("the solution left the finite numbers (blow-up)")
        accept = err_norm <= 1
        with np.errstate(divide="ignore"):
            factor = np.clip(_SAFETY * err_norm ** -0.2, _MIN_FACTOR, _MAX_FACTOR)
        factor = np.where(np.isfinite(err_norm), factor, _MIN_FACTOR)
        # A step shortened to hit a save time says nothing against the longer proposal: keep it.
        h[idx] = np.where(accept & hits, np.maximum(h[idx], step * factor), step * factor)
        done = idx[accept]
        t[done] = np.where(hits, target, ti + step)[accept]
        y[:, done] = y5[:, accept]
        k1[:, done] = k[-1][:, accept]
        saved = done[hits[accept]]
        out[next_save[saved], :, saved] = y[:, saved].T
        next_save[saved] += 1
        # Stiff, and worth Radau's per-column cost: a mildly stiff column a few hundred steps from the end
        # stays in the vectorised explicit loop.
        stiff = (h_lambda[accept] > STIFF_TEST) & ((t_save[-1] - t[done]) > WORTH_IMPLICIT * h[done])
        stiff_run[done] = np.where(stiff, stiff_run[done] + 1, stiff_run[done])
        calm_run[done] = np.where(stiff, 0, calm_run[done] + 1)
        stiff_run[done[calm_run[done] >= CALM_STEPS]] = 0
        for j in done[(stiff_run[done] >= STIFF_STEPS) & (next_save[done] < t_save.size)]:
            out[next_save[j]:, :, j], steps = _finish_implicitly(rhs, jacobian, t[j], y[:, j], t_save[next_save[j]:],
                                                                 rtol, atol, implicit_left)
            implicit_left -= steps
            next_save[j] = t_save.size
        if np.any(h[idx] < 1e-14 * np.maximum(1.0, ti)):
            raise FloatingPointError("step size underflow: the explicit solver cannot follow this trajectory")
    raise RuntimeError(f"solve_batched did not reach the end in {max_iterations} iterations")
