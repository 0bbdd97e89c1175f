"""Where collapse begins in η: the collapse threshold of a given start, located by bisection (H5).

Definition. For an initial state, the collapse threshold is the smallest weight decay η from which the
trajectory collapses (s → 0 for one mode of Eqs. 11–12; ‖W‖ → 0 for the matrix model, Eqs. 2–4). The
theory's prediction is η* = τ²/(4(1+σ²)), independent of α_p: above η*, d ln s/dt ≤ 2(η* − η) < 0 at
every state, so everything collapses; below η*, p₊ exists, and a start that lies in p₊'s basin for every
η < η* (a small predictor eigenvalue with enough signal s, say, which then crosses the saddle p₋ ≤ τ/(2k)
while c = s − p²/α_p > 0) survives until η passes η*, where p₊ disappears. A start outside that basin for
some η < η* has a threshold below η*; the check would then report it.

With an EMA target (Eq. 13) the prediction is the same η* at τ = 1 = 1/(4(1+σ²)), whatever β and τ(0):
at a fixed point with s > 0, ds/dt = 0, so dτ/dt = β(1 − τ) = 0 and τ = 1; above η*, V = w² + (2η/β)a²
decreases from every state (G3 of `matrix_fate`, one mode). The basin does move with β: while s grows,
Eq. 13 pulls τ below 1 and a slow EMA keeps it there, so a start near the basin's edge (below the
parabola) has a threshold that falls with β (tests/test_linear_threshold.py: the control).

Observation, blind to η* and p±. A trajectory counts as collapsed only when it enters an exact trapping
box around the origin built from the equations alone (`fate.origin_box`; with EMA |p| ≤ η/2,
|w|, |a| ≤ η/(2√α_p); `matrix_fate.origin_box`), checked at times (0.01/r)·1.1ⁱ up to HORIZON_SCALES/r,
r = η (min(η, β) with EMA), the slow time scale of the origin. It counts as not collapsed only when p₊'s
region holds (eigen ODE: theorem, with EMA the Lyapunov ellipsoid of `ema_lyapunov`; matrix model:
certificate A, numerical). A trajectory in neither region when the horizon passes is undecided, and
says nothing about either side. So an observed threshold above η* cannot come from the theory's own
statement: only from the dynamics (or a wrong right-hand side). Near the threshold the passage past the
ghost of p± takes about π/(η*√δ) for η = (1 + δ)η* (saddle-node bottleneck), so collapse is seen for
δ ≳ (π/HORIZON_SCALES)² ≈ 2.5·10⁻⁴; closer, the η is undecided (it used to count as not collapsed, and
the bracket then lay above η*).

Bisection. The bracket starts at [η*/3, 2η*] (both ends integrated first: a threshold outside it is
reported as such, an undecided end as UNRESOLVED; not centred on η* in log η, so that no midpoint is η*
itself) and is halved in log η until hi/lo ≤ 1 + REL_TOL; once an η is undecided, the gaps between each
certified side and the undecided band are halved until within 1 + BAND_TOL. The observed threshold is
√(lo·hi); each side carries the basis of its certificate.
"""
import math
from dataclasses import dataclass, field, replace

import numpy as np

from linear_dynamics import fate as eigen_fate
from linear_dynamics import matrix_fate
from linear_dynamics.batched_rk import solve_batched
from linear_dynamics.eigen_ode import EMA_FLOOR, ema_mode_jacobian, ema_mode_rhs, log_s_jacobian, log_s_rhs
from linear_dynamics.ema_lyapunov import ema_plus_region
from linear_dynamics.fixed_points import eta_critical
from linear_dynamics.matrix_model import initial_state
from linear_dynamics.params import EigenParams, LinearConfig

REL_TOL = 0.01
BAND_TOL = 0.001  # the undecided band's edges are resolved to 0.1%
BRACKET = (1 / 3, 2.0)  # the first bracket, in units of η*
HORIZON_SCALES = 200.0
CHECK_GROWTH = 1.1
LOCATED, BELOW, ABOVE = "located", "below the bracket", "above the bracket"
UNRESOLVED = "an end of the bracket undecided"


@dataclass(frozen=True)
class Observation:
    """What one trajectory did at one η: collapsed (entered the origin box) or not, when, why, and the basis
    of that: 'theorem' or 'numerical' (a certificate held), None when only the horizon ran out (undecided)."""

    eta: float
    collapsed: bool
    t: float
    how: str
    basis: str | None

    @property
    def decided(self) -> bool:
        return self.basis is not None

    def as_dict(self) -> dict:
        return {"eta": self.eta, "collapsed": self.collapsed, "t": self.t, "how": self.how, "basis": self.basis}


@dataclass(frozen=True)
class Threshold:
    """A collapse threshold beside η*, bracketed by decided observations only. LOCATED: eta_low (the largest η
    certified not to collapse) < threshold ≤ eta_high (the smallest η certified to collapse), each side with
    the basis of its certificate; between them an undecided band (η's whose trajectory reached neither
    certificate within the horizon: next to a saddle-node) when undecided_band is not None. BELOW / ABOVE
    when the bracket's low end already collapsed / its high end did not; UNRESOLVED when an end is undecided."""

    eta_critical: float
    eta_low: float | None      # the largest η certified not to collapse
    eta_high: float | None     # the smallest η certified to collapse
    status: str
    observations: tuple[Observation, ...] = field(default=())
    undecided_band: tuple[float, float] | None = None

    @property
    def eta_threshold_observed(self) -> float | None:
        """√(eta_low·eta_high) when located; otherwise the bracket end that bounds it (None: unresolved)."""
        if self.status == LOCATED:
            return math.sqrt(self.eta_low * self.eta_high)
        return {BELOW: self.eta_high, ABOVE: self.eta_low}.get(self.status)

    def _basis(self, eta: float | None) -> str | None:
        return next((o.basis for o in self.observations if o.eta == eta and o.decided), None)

    def as_dict(self) -> dict:
        band = self.undecided_band
        return {"eta_threshold_observed": self.eta_threshold_observed, "eta_critical": self.eta_critical,
                "eta_low": self.eta_low, "eta_high": self.eta_high, "status": self.status,
                "basis_low": self._basis(self.eta_low), "basis_high": self._basis(self.eta_high),
                "undecided_band": None if band is None else list(band),
                "undecided_width": None if band is None else band[1] / band[0] - 1,
                "bracket_width": None if self.status != LOCATED else self.eta_high / self.eta_low - 1,
                "evaluations": len(self.observations)}


def bisect_threshold(collapses, eta_critical: float, lo: float, hi: float, rel_tol: float = REL_TOL,
                     band_tol: float = BAND_TOL) -> Threshold:
    """Locate where collapses(η) -> Observation switches from certified not collapsed to certified collapsed
    in [lo, hi] (assumes one switch, possibly through a band of undecided η's). Undecided observations never
    move a side of the bracket: the bracket is halved in log η until its ends are within a factor
    1 + rel_tol, and once an η is undecided each gap between a certified side and the undecided band is
    halved until within 1 + band_tol (the band's edges: how close to η* each certificate reaches)."""
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo = {lo}, hi = {hi}")
    seen = [collapses(lo), collapses(hi)]
    if not (seen[0].decided and seen[1].decided):
        return Threshold(eta_critical, None, None, UNRESOLVED, tuple(seen))
    if seen[0].collapsed:
        return Threshold(eta_critical, None, lo, BELOW, tuple(seen))
    if not seen[1].collapsed:
        return Threshold(eta_critical, hi, None, ABOVE, tuple(seen))
    undecided: list[float] = []
    while True:
        gaps = [(lo, min(undecided)), (max(undecided), hi)] if undecided else [(lo, hi)]
        wide = [(a, b) for a, b in gaps if b / a > 1 + (band_tol if undecided else rel_tol)]
        if not wide:
            break
        a, b = max(wide, key=lambda gap: gap[1] / gap[0])
        seen.append(collapses(math.sqrt(a * b)))
        mid = seen[-1]
        if not mid.decided:
            undecided.append(mid.eta)
        elif mid.collapsed:
            hi = mid.eta
        else:
            lo = mid.eta
    band = (min(undecided), max(undecided)) if undecided else None
    return Threshold(eta_critical, lo, hi, LOCATED, tuple(seen), band)


def _check_times(rate: float) -> np.ndarray:
    """(0.01/r)·1.1ⁱ up to HORIZON_SCALES/r, r the slowest rate the parameters set (η; min(η, β) with EMA):
    the observer's checks, blind to η* and p±."""
    count = int(np.ceil(np.log(HORIZON_SCALES / 0.01) / np.log(CHECK_GROWTH)))
    return (0.01 / rate) * CHECK_GROWTH ** np.arange(count + 1)


def _watch(eta: float, rate: float, state: np.ndarray, rhs, jacobian, atol, in_box, survives, box: str) -> Observation:
    """Integrate one mode at the observer's check times until in_box(y) (collapsed, theorem) or survives(y)
    (p₊'s proved region: not collapsed, theorem); undecided when the horizon passes first."""
    now = 0.0
    times = _check_times(rate)
    for start in range(0, times.size, eigen_fate.CHECKS_PER_CALL):
        chunk = times[start:start + eigen_fate.CHECKS_PER_CALL]
        path = solve_batched(rhs, state, chunk - now, atol=atol, jacobian=jacobian)
        for t, y in zip(chunk, path):
            if in_box(y):
                return Observation(eta, True, float(t), f"in the origin box {box}", eigen_fate.THEOREM)
            if survives(y):
                return Observation(eta, False, float(t), "in p₊'s trapping region", eigen_fate.THEOREM)
        state, now = path[-1], chunk[-1]
    return Observation(eta, False, float(times[-1]), f"in neither region by t = {times[-1]:.4g} (undecided)", None)


def eigen_collapse(p0: float, s0: float, alpha_p: float, eta: float, sigma2: float, tau: float,
                   beta: float | None = None) -> Observation:
    """Integrate one mode of Eqs. 11–12 (fixed τ) or, with beta, of Eqs. 11–13 from τ(0) = tau, from
    (p0, s0 > 0), and watch for the origin box or p₊'s proved region (module docstring)."""
    if beta is None:
        params = EigenParams(alpha_p, eta, sigma2, tau=tau)
        p_box, s_box = eigen_fate.origin_box(params)
        classify = eigen_fate.classifier(params) if eta < eta_critical(tau, sigma2) else None
        return _watch(eta, eta, np.array([[p0], [math.log(s0)]]), lambda y: log_s_rhs(y, params),
                      lambda y: log_s_jacobian(y, params), 1e-12,
                      lambda y: abs(y[0, 0]) <= p_box and math.exp(y[1, 0]) <= s_box,
                      lambda y: classify is not None and classify(y)[0][0] == "p+",
                      f"|p| ≤ {p_box:.3g}, s ≤ {s_box:.3g}")
    params = EigenParams(alpha_p, eta, sigma2, beta=beta)
    p_box, w_box = eta / 2, eta / (2 * math.sqrt(alpha_p))  # `fate`'s EMA origin box (theorem)
    region = ema_plus_region(eta, sigma2, beta)
    w0 = math.sqrt(s0)
    return _watch(eta, min(eta, beta), np.array([[p0], [w0], [tau * w0]]), lambda y: ema_mode_rhs(y, params),
                  lambda y: ema_mode_jacobian(y, params), np.array([1e-12, EMA_FLOOR, EMA_FLOOR]),
                  lambda y: abs(y[0, 0]) <= p_box and abs(y[1, 0]) <= w_box and abs(y[2, 0]) <= w_box,
                  lambda y: region is not None and bool(region.contains(*y, alpha_p)[0]),
                  f"|p| ≤ {p_box:.3g}, |w|, |a| ≤ {w_box:.3g}")


def matrix_collapse(config: LinearConfig) -> Observation:
    """Integrate the matrix flow of `config` from its initial state and watch for the origin box."""
    def judge(W, W_p, W_a):
        if matrix_fate.in_origin_box(W, W_p, W_a, config):
            return True
        return False if matrix_fate.aligned_certificate(W, W_p, W_a, config, matrix_fate.FLOW_ALIGN_TOL) else None

    times = _check_times(min(config.eta, config.beta) if config.ema else config.eta)
    t, found = matrix_fate.continue_flow(config, initial_state(config), 0.0, times, judge, max_evaluations=None)
    if t is None:
        return Observation(config.eta, False, float(times[-1]), f"in neither region by t = {times[-1]:.4g} (undecided)",
                           None)
    if found:
        return Observation(config.eta, True, t, "in the origin box", eigen_fate.THEOREM)
    return Observation(config.eta, False, t, "certificate A: aligned modes in p₊'s region", eigen_fate.NUMERICAL)


def eigen_threshold(p0: float, s0: float, alpha_p: float, sigma2: float, tau: float, rel_tol: float = REL_TOL,
                    beta: float | None = None) -> Threshold:
    """The located collapse threshold of the mode (p0, s0) at fixed τ, or with beta from τ(0) = tau, beside η*:
    τ²/(4k) at a fixed τ; 1/(4k) with EMA, whatever β and τ(0) (module docstring)."""
    star = eta_critical(tau if beta is None else 1.0, sigma2)
    return bisect_threshold(lambda eta: eigen_collapse(p0, s0, alpha_p, eta, sigma2, tau, beta), star,
                            BRACKET[0] * star, BRACKET[1] * star, rel_tol)


def matrix_threshold(config: LinearConfig, rel_tol: float = REL_TOL) -> Threshold:
    """The located collapse threshold of the matrix flow from `initial_state(config)`, beside η* (τ = 1)."""
    star = matrix_fate.eta_star(config)
    return bisect_threshold(lambda eta: matrix_collapse(replace(config, eta=eta)), star,
                            BRACKET[0] * star, BRACKET[1] * star, rel_tol)
