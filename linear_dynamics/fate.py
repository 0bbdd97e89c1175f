"""The fate of each mode of Eqs. 11–13: the attractor it converges to, and from when that is certain.

A verdict read off at t_end ("s(t_end) below a threshold") misjudges slow modes: with a small η a mode
below the saddle p₋ shrinks only like e^{−ηt}. Here a mode is *decided* once its state lies in a region
around a stable fixed point (or fixed line) that it does not leave; a mode still undecided at t_end is
integrated further (only those modes, vectorised) for up to MAX_SCALES time scales
(`fate_time_scale`), and is reported 'undecided' if it never gets there (e.g. it sits on the saddle's
stable manifold, or at η = η* creeps towards the merged point, which is not stable). With k = 1 + σ²:

Fixed τ, η > 0 (exact). By Eq. 14, s = p²/α_p + c(t) with |c(t)| = |c(0)| e^{−2ηt}, so p alone obeys
    dp/dt = g(p) + α_p c(t)(τ − kp),     g(p) = p²(τ − kp) − ηp = −kp(p − p₋)(p − p₊).
Around each zero of g that `fixed_points` finds stable (Jacobian), the origin and p₊, take the interval
reaching halfway to the neighbouring zeros (half-width √(η/k) when the origin is alone, η > η*). Where g
points inwards at both ends by more than the c-term can ever reach again, p cannot leave the interval
and converges to that zero.
Fixed τ, η = 0 (exact). c is conserved; `collapses_closed_form` names the line the mode stops on.
EMA, in the regular coordinates (p, w, a) of `ema_mode_rhs` (s = w², τ = a/w).
  η > 0, collapse (exact): on the faces of the box |p| ≤ η/2, |w|, |a| ≤ η/(2√α_p) the field points
  inwards, and inside it (|w|, |a|) is bounded by a stable linear system, so the mode goes to 0.
  η > 0, p₊ at τ = 1 (Eq. 13's fixed point; a tolerance, not a proof): |p − p₊| and |s − s₊| within
  EMA_TOL of their distances to p₋, and |τ − 1| ≤ EMA_TOL, where the Jacobian (`ema_jacobian`) is stable.
  η = 0: c is conserved for any τ(t). c > 0 keeps s ≥ c: non-collapsed. c ≤ 0 keeps |p| ≥ r = √(−α_p c)
  and the sign of p, so with p ≤ 0 or r ≥ 1/k the line p = 1/k is out of reach: collapsed. Other modes
  are decided within tolerance of that line (|p − 1/k| ≤ EMA_TOL (1/k − r), |τ − 1| ≤ EMA_TOL), which
  attracts wherever s > 0.
"""
from dataclasses import dataclass

import numpy as np

from linear_dynamics.batched_rk import solve_batched
from linear_dynamics.fixed_points import collapses_closed_form, ema_jacobian, fixed_points
from linear_dynamics.params import EigenParams

COLLAPSED, NON_COLLAPSED, UNDECIDED = "collapsed", "non-collapsed", "undecided"
MAX_SCALES = 100  # continue past t_end for at most this many time scales
CHECKS_PER_SCALE = 10  # region tests per time scale past t_end: the resolution of t_decided there
EMA_TOL = 1e-2


@dataclass(frozen=True)
class Fate:
    """Per mode: the verdict, the attractor's name (a FixedPoint or FixedLine name of `fixed_points`;
    None when undecided) and the first checked time from which the mode stayed in its region (NaN)."""

    verdicts: tuple[str, ...]
    fixed_point: tuple[str | None, ...]
    t_decided: np.ndarray


def verdict_of(name: str | None) -> str:
    """'collapsed' for the collapse point/line, 'non-collapsed' for p₊ or the line p = τ/k, else 'undecided'."""
    if name is None:
        return UNDECIDED
    return COLLAPSED if name == "collapse" else NON_COLLAPSED


def _stable_rates(params: EigenParams) -> list[float]:
    """|Re λ| of every Jacobian eigenvalue at the stable fixed points (EMA at η = 0: the transverse
    eigenvalues on the line p = 1/k, at the point a mode started on the parabola reaches)."""
    k = 1 + params.sigma2
    if not params.ema:
        report = fixed_points(params.alpha_p, params.eta, params.sigma2, params.tau)
        return [abs(v) for fp in report.fixed_points if fp.stable for v in fp.eigenvalues]
    if params.eta == 0:
        w = 1 / (k * np.sqrt(params.alpha_p))
        values = np.abs(np.linalg.eigvals(ema_jacobian(1 / k, w, w, params.alpha_p, 0.0, params.sigma2, params.beta)).real)
        return list(values[values > 1e-12 * values.max()])  # drop the zero eigenvalue along the line
    rates = []
    for fp in fixed_points(params.alpha_p, params.eta, params.sigma2, 1.0).fixed_points:
        w = np.sqrt(fp.s)
        values = np.linalg.eigvals(ema_jacobian(fp.p, w, w, params.alpha_p, params.eta, params.sigma2, params.beta)).real
        if np.all(values < 0):
            rates += list(np.abs(values))
    return rates


def fate_time_scale(params: EigenParams) -> float:
    """1 / the slowest linear decay rate at the stable fixed points: one unit of the continued integration.

    Not defined for a fixed τ at η = 0, where the closed form decides every mode without integrating.
    """
    if not params.ema and params.eta == 0:
        raise ValueError("eta: a fixed tau at eta = 0 has no isolated stable point; collapses_closed_form decides")
    return 1.0 / min(_stable_rates(params))


def _undecided(state: np.ndarray) -> np.ndarray:
    """An object array of None, one per column of state: no attractor named yet."""
    return np.full(state.shape[1], None, dtype=object)


def _decided_from_start(state: np.ndarray, params: EigenParams) -> np.ndarray:
    """Names decided by Eq. 14's conserved c at η = 0 (None elsewhere, and for EMA modes that need integrating)."""
    names = _undecided(state)
    if params.eta > 0:
        return names
    if not params.ema:
        p, s = state
        collapses = collapses_closed_form(p, s, params.alpha_p, 0.0, params.sigma2, params.tau)
        names[:] = np.where(collapses, "collapse", "non-collapsed")
        return names
    p, w, _ = state
    c = w**2 - p**2 / params.alpha_p
    reach = np.sqrt(np.maximum(-params.alpha_p * c, 0.0))
    names[c > 0] = "non-collapsed"
    names[(c <= 0) & ((p <= 0) | (reach >= 1 / (1 + params.sigma2)))] = "collapse"
    return names


def _trapping_intervals(params: EigenParams) -> list[tuple[str, float, float]]:
    """(name, lo, hi) around each stable zero of g (fixed τ, η > 0); see the module docstring."""
    report = fixed_points(params.alpha_p, params.eta, params.sigma2, params.tau)
    zeros = [fp.p for fp in report.fixed_points]  # ascending: 0 ≤ p₋ ≤ p₊
    intervals = []
    for i, fp in enumerate(report.fixed_points):
        if not fp.stable:
            continue
        gaps = [zeros[j] - fp.p for j in (i - 1, i + 1) if 0 <= j < len(zeros)]
        half = min(abs(gap) for gap in gaps) / 2 if gaps else np.sqrt(params.eta / (1 + params.sigma2))
        lo = (fp.p + zeros[i - 1]) / 2 if i > 0 else fp.p - half
        hi = (fp.p + zeros[i + 1]) / 2 if i + 1 < len(zeros) else fp.p + half
        intervals.append((fp.name, lo, hi))
    return intervals


def _classifier(params: EigenParams):
    """A function from states (d, n) to the name of the attractor whose region each lies in (or None)."""
    k, alpha_p, eta = 1 + params.sigma2, params.alpha_p, params.eta
    if not params.ema:
        if eta == 0:  # every mode is decided from the start
            return _undecided
        tau = params.tau
        intervals = _trapping_intervals(params)

        def g(p):
            return p**2 * (tau - k * p) - eta * p

        def classify(state):
            p, s = state
            push = alpha_p * np.abs(s - p**2 / alpha_p)  # α_p |c|, which only shrinks from here on
            names = _undecided(state)
            for name, lo, hi in intervals:
                trapped = ((lo <= p) & (p <= hi) & (g(lo) > push * abs(tau - k * lo))
                           & (-g(hi) > push * abs(tau - k * hi)))
                names[trapped] = name
            return names

        return classify

    def tau_of(w, a):
        return np.divide(a, w, out=np.full_like(a, np.nan), where=w != 0)

    if eta == 0:
        def classify(state):
            p, w, a = state
            reach = np.sqrt(np.maximum(p**2 - alpha_p * w**2, 0.0))  # r = √(−α_p c)
            names = _undecided(state)
            names[(np.abs(p - 1 / k) <= EMA_TOL * (1 / k - reach)) & (np.abs(tau_of(w, a) - 1) <= EMA_TOL)] = "non-collapsed"
            return names

        return classify

    box_p, box_w = eta / 2, eta / (2 * np.sqrt(alpha_p))
    target = None
    roots = [fp for fp in fixed_points(alpha_p, eta, params.sigma2, 1.0).fixed_points if fp.name in ("p-", "p+")]
    if len(roots) == 2:
        minus, plus = roots
        w_plus = np.sqrt(plus.s)
        if np.all(np.linalg.eigvals(ema_jacobian(plus.p, w_plus, w_plus, alpha_p, eta, params.sigma2, params.beta)).real < 0):
            target = (plus, plus.p - minus.p, plus.s - minus.s)

    def classify(state):
        p, w, a = state
        names = _undecided(state)
        names[(np.abs(p) <= box_p) & (np.abs(w) <= box_w) & (np.abs(a) <= box_w)] = "collapse"
        if target is not None:
            plus, gap_p, gap_s = target
            near = ((np.abs(p - plus.p) <= EMA_TOL * gap_p) & (np.abs(w**2 - plus.s) <= EMA_TOL * gap_s)
                    & (np.abs(tau_of(w, a) - 1) <= EMA_TOL))
            names[near] = "p+"
        return names

    return classify


def decide_fates(t: np.ndarray, states: np.ndarray, rhs, params: EigenParams,
                 rtol: float = 1e-10, atol: float = 1e-12) -> Fate:
    """Fates of the modes whose saved states are `states` (len(t), d, n) at times t (t[-1] = t_end),
    in the integrator's coordinates ((p, s) for a fixed τ, (p, w, a) with EMA); rhs(state) continues them."""
    names = _decided_from_start(states[0], params)
    t_decided = np.where(np.equal(names, None), np.nan, t[0])
    classify = _classifier(params)
    labels = np.stack([classify(state) for state in states])  # (len(t), n)
    settled = np.equal(names, None) & np.not_equal(labels[-1], None)
    # The earliest saved time from which the label never changed again.
    changed = labels != labels[-1]
    first = len(t) - np.argmax(changed[::-1], axis=0)
    first[~changed.any(axis=0)] = 0
    names[settled] = labels[-1, settled]
    t_decided[settled] = t[first[settled]]

    todo = np.flatnonzero(np.equal(names, None))
    if todo.size:
        scale = fate_time_scale(params)
        checks = scale * np.arange(1, CHECKS_PER_SCALE + 1) / CHECKS_PER_SCALE
        state, now = states[-1][:, todo], t[-1]
        for _ in range(MAX_SCALES):
            path = solve_batched(rhs, state, checks, rtol=rtol, atol=atol)  # (checks, d, m)
            found = np.stack([classify(s) for s in path])
            hit = np.not_equal(found, None)
            done = hit.any(axis=0)
            at = hit.argmax(axis=0)[done]
            names[todo[done]] = found[at, np.flatnonzero(done)]
            t_decided[todo[done]] = now + checks[at]
            todo, state, now = todo[~done], path[-1][:, ~done], now + scale
            if todo.size == 0:
                break
    return Fate(verdicts=tuple(verdict_of(name) for name in names), fixed_point=tuple(names),
                t_decided=t_decided)
