"""The fate of each mode of Eqs. 11–13: the attractor it converges to, from when that is certain, and
whether that rests on a theorem or on a numerical tolerance.

A verdict read off at t_end ("s(t_end) below a threshold") misjudges slow modes: with a small η a mode
below the saddle p₋ shrinks only like e^{−ηt}. Here a mode is *decided* once its state lies in a region
around a stable fixed point (or fixed line) that it does not leave. Modes still undecided at t_end are
integrated further (only those, vectorised, stiff ones implicitly; see `batched_rk`) and checked at
times past t_end that follow the dynamics' own cadence: the first a tenth of the fastest linear time
scale at the stable fixed points after t_end, each next one CHECK_GROWTH times further from t_end (so a
tiny η, whose slow scale 1/η is huge, does not push the first check out of reach). They stop after
MAX_SCALES slow time scales (`fate_time_scale`) or MAX_EVALUATIONS right-hand-side evaluations and are
'undecided' if they never get there: on the saddle's stable manifold, at η = η* creeping towards the
merged point (not stable), or out of budget. With k = 1 + σ² and c = s − p²/α_p:

Fixed τ, η > 0 (basis: theorem). By Eq. 14 c(t) = c e^{−2ηt} keeps its sign and shrinks, and p obeys
    dp/dt = g(p) + α_p c(t)(τ − kp),     g(p) = p²(τ − kp) − ηp = −kp(p − p₋)(p − p₊).
An interval of p whose ends g pushes inwards by more than the c-term can ever push outwards holds p
for good, and p converges to the one zero of g inside. With `fixed_points`' stable zeros (Jacobian):
  collapse, η > η*: d ln s/dt = 2[p(τ − kp) − η] ≤ 2(η* − η) < 0 everywhere, so s → 0 from any state.
  collapse, p < p₋: the interval (−∞, h], h = max(p, p₋/2); needs −g(h) > α_p c (τ − kh), automatic
      for c ≤ 0;
  p₊, p > p₋: the interval [l, ∞), l = min(p, (p₋ + p₊)/2); needs g(l) > −α_p c (τ − kl), automatic
      for c ≥ 0.
  s = 0 is invariant (Eq. 12): collapse.
Fixed τ, η = 0 (theorem). c is conserved; `collapses_closed_form` names the line the mode stops on.
EMA, in the regular coordinates (p, w, a) of `ema_mode_rhs` (s = w², τ = a/w). c obeys Eq. 14 for any
τ(t), so c ≤ 0 keeps |p| ≥ √(−α_p c(t)) and p ≤ 0 for good: with p ≤ 0 every non-collapsed attractor
(p₊, the line p = 1/k) is out of reach: collapsed (theorem). Further:
  η > 0, collapse (theorem): on the faces of the box |p| ≤ η/2, |w|, |a| ≤ η/(2√α_p) the field points
  inwards, and inside it (|w|, |a|) is bounded by a stable linear system, so the mode goes to 0.
  η > 0, p₊ at τ = 1 (Eq. 13's fixed point; theorem): the ellipsoid of `ema_lyapunov`, a quadratic
  Lyapunov function's sublevel set on which its decrease is verified cell by cell over the unit sphere.
  It shrinks with the gap p₊ − p₋ and is absent next to the saddle-node: modes there stay undecided.
  η = 0: c > 0 keeps s ≥ c: non-collapsed (theorem). c ≤ 0 with √(−α_p c) ≥ 1/k keeps p ≥ 1/k off the
  line p = 1/k: collapsed (theorem). Other modes are decided within tolerance of that line
  (|p − 1/k| ≤ EMA_TOL (1/k − √(−α_p c)), |τ − 1| ≤ EMA_TOL; numerical), which attracts where s > 0.
"""
from dataclasses import dataclass

import numpy as np

from linear_dynamics.batched_rk import solve_batched
from linear_dynamics.ema_lyapunov import ema_plus_region
from linear_dynamics.fixed_points import collapses_closed_form, ema_jacobian, fixed_points
from linear_dynamics.params import EigenParams

COLLAPSED, NON_COLLAPSED, UNDECIDED = "collapsed", "non-collapsed", "undecided"
THEOREM, NUMERICAL = "theorem", "numerical"
MAX_SCALES = 100  # continue past t_end for at most this many slow time scales
MAX_EVALUATIONS = 60_000  # right-hand-side evaluations past t_end (about 10⁴ explicit steps)
# Radau steps past t_end per solver call, over all its modes (~0.25 ms each). The mode next to the saddle-node
# in tests/test_linear_fate.py needs 58,000 to collapse; at η = 10⁻¹⁵⁰ Radau crept on without end, and this
# ends it (docs/theory.md, the paragraph on stiffness).
MAX_IMPLICIT_STEPS = 100_000
CHECK_GROWTH = 1.1  # each check past t_end lies 10% further from t_end than the one before
CHECKS_PER_CALL = 8  # checks integrated per solver call; decided modes drop out between calls
MAX_CHECKS = 1000  # CHECK_GROWTH¹⁰⁰⁰ ≈ 10⁴¹: far past any reachable time within MAX_EVALUATIONS
EMA_TOL = 1e-2


@dataclass(frozen=True)
class Fate:
    """Per mode: the verdict, the attractor's name (a FixedPoint or FixedLine name of `fixed_points`;
    None when undecided), the first checked time from which the mode stayed in its region (NaN), and the
    basis of the verdict: THEOREM (a proved trapping region) or NUMERICAL (a tolerance: EMA at η = 0 near
    the line p = 1/k); None if undecided."""

    verdicts: tuple[str, ...]
    fixed_point: tuple[str | None, ...]
    t_decided: np.ndarray
    basis: tuple[str | None, ...]


def _verdict_of(name: str | None) -> str:
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
    """1 / the slowest linear decay rate at the stable fixed points: the unit of MAX_SCALES.

    Not defined for a fixed τ at η = 0, where the closed form decides every mode without integrating.
    """
    if not params.ema and params.eta == 0:
        raise ValueError("eta: a fixed tau at eta = 0 has no isolated stable point; collapses_closed_form decides")
    return 1.0 / min(_stable_rates(params))


def check_times(t_end: float, params: EigenParams) -> np.ndarray:
    """The times past t_end at which undecided modes are checked: t_end + Δ₀ CHECK_GROWTHⁱ, Δ₀ a tenth
    of the fastest linear time scale at the stable fixed points, up to MAX_SCALES slow time scales."""
    rates = _stable_rates(params)
    # In logarithms: with a weight decay near the smallest float, 1/η overflows; checks past the largest
    # float are dropped (none may be left: such modes stay undecided).
    log_first = np.log(0.1) - np.log(max(rates))
    span = np.log(MAX_SCALES) - np.log(min(rates)) - log_first
    count = min(int(np.ceil(span / np.log(CHECK_GROWTH))), MAX_CHECKS) + 1
    with np.errstate(over="ignore"):
        times = t_end + np.exp(log_first + np.log(CHECK_GROWTH) * np.arange(max(count, 1)))
    return times[np.isfinite(times)]


def _undecided(state: np.ndarray) -> np.ndarray:
    """An object array of None, one per column of state: no attractor (or basis) named yet."""
    return np.full(state.shape[1], None, dtype=object)


def _decided_from_start(state: np.ndarray, params: EigenParams):
    """(names, basis) decided from the initial state alone: s = 0 with a fixed τ (invariant), and at
    η = 0 by Eq. 14's conserved c (None elsewhere, and for EMA modes that need integrating)."""
    names = _undecided(state)
    if not params.ema:
        p, s = state[0], np.exp(state[1])
        names[s == 0] = "collapse"
    if params.eta == 0:
        if not params.ema:
            collapses = collapses_closed_form(p, s, params.alpha_p, 0.0, params.sigma2, params.tau)
            names[:] = np.where(collapses, "collapse", "non-collapsed")
        else:
            p, w, _ = state
            c = w**2 - p**2 / params.alpha_p
            reach = np.sqrt(np.maximum(-params.alpha_p * c, 0.0))
            names[c > 0] = "non-collapsed"
            names[(c <= 0) & ((p <= 0) | (reach >= 1 / (1 + params.sigma2)))] = "collapse"
    basis = np.where(np.equal(names, None), None, THEOREM)
    return names, basis


def origin_box(params: EigenParams) -> tuple[float, float]:
    """(a, b) of a box |p| ≤ a, 0 ≤ s ≤ b around the origin that no mode leaves and in which s → 0
    (fixed τ > 0, η > 0; exact, and built from Eqs. 11–12 alone, without p± or η*).

    With a(τ + ka) = η/2, inside the box d ln s/dt = 2[p(τ − kp) − η] ≤ 2[a(τ + ka) − η] = −η, so s
    shrinks and stays ≤ b; on the face p = a, dp/dt = α_p s(τ − ka) − ηa ≤ α_p b τ − ηa < 0 for
    b = ηa/(2α_p τ); on p = −a, dp/dt = α_p s(τ + ka) + ηa > 0. Then s → 0 and p → 0.
    """
    if params.ema or params.eta <= 0 or params.tau <= 0:
        raise ValueError("the origin box is for a fixed tau > 0 and eta > 0")
    k, tau, eta = 1 + params.sigma2, params.tau, params.eta
    a = 2 * (eta / 2) / (tau + np.sqrt(tau**2 + 2 * k * eta))  # the positive root of k a² + τ a − η/2
    return float(a), float(eta * a / (2 * params.alpha_p * tau))


def _fixed_tau_classifier(params: EigenParams):
    """Fixed τ, η > 0: the exact trapping tests of the module docstring, on states (p, ln s)."""
    k, alpha_p, eta, tau = 1 + params.sigma2, params.alpha_p, params.eta, params.tau
    points = fixed_points(alpha_p, eta, params.sigma2, tau).fixed_points  # ascending p: 0 ≤ p₋ ≤ p₊
    right = points[1].p if len(points) > 1 else None  # the zero of g next to the origin (p₋, or p₋ = p₊ at η*)
    plus = next((fp for fp in points if fp.name == "p+" and fp.stable), None)

    def g(p):
        return p**2 * (tau - k * p) - eta * p

    def classify(state):
        p, s = state[0], np.exp(state[1])
        c_term = alpha_p * (s - p**2 / alpha_p)  # α_p c; the future α_p c(t) has its sign and is smaller
        names = _undecided(state)
        if right is None:  # η > η*: d ln s/dt ≤ 2(η* − η) < 0 everywhere
            names[:] = "collapse"
        else:
            h = np.maximum(p, right / 2)
            names[(p < right) & (-g(h) > c_term * (tau - k * h))] = "collapse"
            if plus is not None:
                l = np.minimum(p, (right + plus.p) / 2)
                names[(p > right) & (g(l) > -c_term * (tau - k * l))] = "p+"
        return names, np.where(np.equal(names, None), None, THEOREM)

    return classify


def _ema_classifier(params: EigenParams):
    """EMA: the regions of the module docstring, on states (p, w, a)."""
    k, alpha_p, eta = 1 + params.sigma2, params.alpha_p, params.eta

    def tau_of(w, a):
        return np.divide(a, w, out=np.full_like(a, np.nan), where=w != 0)

    if eta == 0:
        def classify(state):
            p, w, a = state
            reach = np.sqrt(np.maximum(p**2 - alpha_p * w**2, 0.0))  # √(−α_p c)
            names = _undecided(state)
            names[(np.abs(p - 1 / k) <= EMA_TOL * (1 / k - reach)) & (np.abs(tau_of(w, a) - 1) <= EMA_TOL)] = "non-collapsed"
            return names, np.where(np.equal(names, None), None, NUMERICAL)

        return classify

    box_p, box_w = eta / 2, eta / (2 * np.sqrt(alpha_p))
    plus = ema_plus_region(eta, params.sigma2, params.beta)

    def classify(state):
        p, w, a = state
        names, basis = _undecided(state), _undecided(state)
        if plus is not None:
            near = plus.contains(p, w, a, alpha_p)
            names[near], basis[near] = "p+", THEOREM
        exact = ((p <= 0) & (w**2 <= p**2 / alpha_p)) | (  # c ≤ 0 and p ≤ 0
            (np.abs(p) <= box_p) & (np.abs(w) <= box_w) & (np.abs(a) <= box_w))
        names[exact], basis[exact] = "collapse", THEOREM
        return names, basis

    return classify


def classifier(params: EigenParams):
    """A function from states (d, n), in the integrator's coordinates ((p, ln s) for a fixed τ, (p, w, a)
    with EMA), to (names, basis): the attractor whose region each state lies in and the basis of that
    region, None where a state is in none."""
    if not params.ema:
        if params.eta == 0:  # every mode is decided from the start
            return lambda state: (_undecided(state), _undecided(state))
        return _fixed_tau_classifier(params)
    return _ema_classifier(params)


def regions(params: EigenParams):
    """Like `classifier`, with the closed forms of the initial-state test too (s = 0; η = 0 by Eq. 14):
    for judging states that are not the start of an integration (the aligned modes of the matrix model)."""
    classify = classifier(params)

    def region(state):
        names, basis = _decided_from_start(state, params)
        more_names, more_basis = classify(state)
        open_ = np.equal(names, None)
        names[open_], basis[open_] = more_names[open_], more_basis[open_]
        return names, basis

    return region


def decide_fates(t: np.ndarray, states: np.ndarray, rhs, params: EigenParams,
                 rtol: float = 1e-10, atol: float = 1e-12, jacobian=None) -> Fate:
    """Fates of the modes whose saved states are `states` (len(t), d, n) at times t (t[-1] = t_end),
    in the integrator's coordinates ((p, ln s) for a fixed τ, ln 0 = −inf; (p, w, a) with EMA);
    rhs(state) (and its jacobian, for stiff modes) continues them (never called on a mode with s = 0,
    which is decided at once)."""
    names, basis = _decided_from_start(states[0], params)
    t_decided = np.where(np.equal(names, None), np.nan, t[0])
    classify = classifier(params)
    labelled = [classify(state) for state in states]
    labels = np.stack([names_at for names_at, _ in labelled])  # (len(t), n)
    settled = np.equal(names, None) & np.not_equal(labels[-1], None)
    # The earliest saved time from which the label never changed again.
    changed = labels != labels[-1]
    first = len(t) - np.argmax(changed[::-1], axis=0)
    first[~changed.any(axis=0)] = 0
    names[settled] = labels[-1, settled]
    basis[settled] = labelled[-1][1][settled]
    t_decided[settled] = t[first[settled]]

    todo = np.flatnonzero(np.equal(names, None))
    evaluations = 0

    def counted_rhs(state):
        nonlocal evaluations
        evaluations += 1
        return rhs(state)

    checks = check_times(t[-1], params) if todo.size else np.empty(0)
    state, now = states[-1][:, todo], t[-1]
    for start in range(0, checks.size, CHECKS_PER_CALL):
        steps_left = (MAX_EVALUATIONS - evaluations) // 6
        if steps_left < 1 or todo.size == 0:
            break
        chunk = checks[start:start + CHECKS_PER_CALL]
        try:
            path = solve_batched(counted_rhs, state, chunk - now, rtol=rtol, atol=atol, max_iterations=steps_left,
                                 jacobian=jacobian, max_implicit_steps=MAX_IMPLICIT_STEPS)
        except (RuntimeError, FloatingPointError):  # out of budget, or the solver failed: the rest stay undecided
            break
        found = [classify(s) for s in path]
        hit = np.stack([np.not_equal(n, None) for n, _ in found])
        done = hit.any(axis=0)
        at = hit.argmax(axis=0)
        for column in np.flatnonzero(done):
            names[todo[column]] = found[at[column]][0][column]
            basis[todo[column]] = found[at[column]][1][column]
            t_decided[todo[column]] = chunk[at[column]]
        todo, state, now = todo[~done], path[-1][:, ~done], chunk[-1]
    return Fate(verdicts=tuple(_verdict_of(name) for name in names), fixed_point=tuple(names),
                t_decided=t_decided, basis=tuple(basis))
