"""Where collapse begins in η: the collapse threshold of a given start, located by bisection (H5).

Definition. For an initial state, the collapse threshold is the smallest weight decay η from which the
trajectory collapses (s → 0 for one mode of Eqs. 11–12; ‖W‖ → 0 for the matrix model, Eqs. 2–4). The
theory's prediction is η* = τ²/(4(1+σ²)), independent of α_p: above η*, d ln s/dt ≤ 2(η* − η) < 0 at
every state, so everything collapses; below η*, p₊ exists, and a start that lies in p₊'s basin for every
η < η* (a small predictor eigenvalue with enough signal s, say, which then crosses the saddle p₋ ≤ τ/(2k)
while c = s − p²/α_p > 0) survives until η passes η*, where p₊ disappears. A start outside that basin for
some η < η* has a threshold below η*; the check would then report it.

Observation, blind to η* and p±. A trajectory counts as collapsed only when it enters an exact trapping
box around the origin built from the equations alone (`fate.origin_box`; `matrix_fate.origin_box`),
checked at times (0.01/η)·1.1ⁱ up to HORIZON_SCALES/η, the slow time scale of the origin. It counts as
not collapsed when the fate's p₊ region holds (eigen ODE: theorem; matrix model: certificate A,
numerical), which stops the integration early, or when the horizon passes. So an observed threshold
above η* cannot come from the theory's own statement: only from the dynamics (or a wrong right-hand
side). Near the threshold the passage past the ghost of p± takes about π/(η*√δ) for η = (1 + δ)η*
(saddle-node bottleneck), so the horizon resolves δ ≳ (π/HORIZON_SCALES)² ≈ 2.5·10⁻⁴, well inside
REL_TOL.

Bisection. The bracket starts at [η*/3, 2η*] (both ends integrated first: a threshold outside it is
reported as such; not centred on η* in log η, so that no midpoint is η* itself) and is halved in log η
until hi/lo ≤ 1 + REL_TOL; the observed threshold is √(lo·hi).
"""
import math
from dataclasses import dataclass, field, replace

import numpy as np

from linear_dynamics import fate as eigen_fate
from linear_dynamics import matrix_fate
from linear_dynamics.batched_rk import solve_batched
from linear_dynamics.eigen_ode import log_s_jacobian, log_s_rhs
from linear_dynamics.fixed_points import eta_critical
from linear_dynamics.matrix_model import initial_state
from linear_dynamics.params import EigenParams, LinearConfig

REL_TOL = 0.01
BRACKET = (1 / 3, 2.0)  # the first bracket, in units of η*
HORIZON_SCALES = 200.0
CHECK_GROWTH = 1.1
LOCATED, BELOW, ABOVE = "located", "below the bracket", "above the bracket"


@dataclass(frozen=True)
class Observation:
    """What one trajectory did at one η: collapsed (entered the origin box) or not, when, and why."""

    eta: float
    collapsed: bool
    t: float
    how: str

    def as_dict(self) -> dict:
        return {"eta": self.eta, "collapsed": self.collapsed, "t": self.t, "how": self.how}


@dataclass(frozen=True)
class Threshold:
    """A located collapse threshold beside η*: status LOCATED with eta_low < threshold ≤ eta_high, or
    BELOW / ABOVE when the bracket's low end already collapsed / its high end did not."""

    eta_critical: float
    eta_low: float | None      # the largest η observed not to collapse
    eta_high: float | None     # the smallest η observed to collapse
    status: str
    observations: tuple[Observation, ...] = field(default=())

    @property
    def eta_threshold_observed(self) -> float:
        """√(eta_low·eta_high) when located; otherwise the bracket end that bounds it."""
        if self.status == LOCATED:
            return math.sqrt(self.eta_low * self.eta_high)
        return self.eta_high if self.status == BELOW else self.eta_low

    def as_dict(self) -> dict:
        return {"eta_threshold_observed": self.eta_threshold_observed, "eta_critical": self.eta_critical,
                "eta_low": self.eta_low, "eta_high": self.eta_high, "status": self.status,
                "evaluations": len(self.observations)}


def bisect_threshold(collapses, eta_critical: float, lo: float, hi: float, rel_tol: float = REL_TOL) -> Threshold:
    """Locate where collapses(η) -> Observation switches from not collapsed to collapsed in [lo, hi],
    halving the bracket in log η until hi/lo ≤ 1 + rel_tol (assumes one switch)."""
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo = {lo}, hi = {hi}")
    seen = [collapses(lo), collapses(hi)]
    if seen[0].collapsed:
        return Threshold(eta_critical, None, lo, BELOW, tuple(seen))
    if not seen[1].collapsed:
        return Threshold(eta_critical, hi, None, ABOVE, tuple(seen))
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        seen.append(collapses(mid))
        lo, hi = (lo, mid) if seen[-1].collapsed else (mid, hi)
    return Threshold(eta_critical, lo, hi, LOCATED, tuple(seen))


def _check_times(eta: float) -> np.ndarray:
    """(0.01/η)·1.1ⁱ up to HORIZON_SCALES/η: the observer's checks, set by η alone."""
    count = int(np.ceil(np.log(HORIZON_SCALES / 0.01) / np.log(CHECK_GROWTH)))
    return (0.01 / eta) * CHECK_GROWTH ** np.arange(count + 1)


def eigen_collapse(p0: float, s0: float, alpha_p: float, eta: float, sigma2: float, tau: float) -> Observation:
    """Integrate one mode of Eqs. 11–12 from (p0, s0 > 0) and watch for the origin box (module docstring)."""
    params = EigenParams(alpha_p, eta, sigma2, tau=tau)
    p_box, s_box = eigen_fate.origin_box(params)
    survives = eigen_fate.classifier(params) if eta < eta_critical(tau, sigma2) else None
    state, now = np.array([[p0], [math.log(s0)]]), 0.0
    times = _check_times(eta)
    for start in range(0, times.size, eigen_fate.CHECKS_PER_CALL):
        chunk = times[start:start + eigen_fate.CHECKS_PER_CALL]
        path = solve_batched(lambda y: log_s_rhs(y, params), state, chunk - now,
                             jacobian=lambda y: log_s_jacobian(y, params))
        for t, y in zip(chunk, path):
            if abs(y[0, 0]) <= p_box and math.exp(y[1, 0]) <= s_box:
                return Observation(eta, True, float(t), f"in the origin box |p| ≤ {p_box:.3g}, s ≤ {s_box:.3g}")
            if survives is not None and survives(y)[0][0] == "p+":
                return Observation(eta, False, float(t), "in p₊'s trapping region (theorem)")
        state, now = path[-1], chunk[-1]
    return Observation(eta, False, float(times[-1]), f"not in the origin box by t = {times[-1]:.4g}")


def matrix_collapse(config: LinearConfig) -> Observation:
    """Integrate the matrix flow of `config` from its initial state and watch for the origin box."""
    def judge(W, W_p, W_a):
        if matrix_fate.in_origin_box(W, W_p, W_a, config):
            return True
        return False if matrix_fate.aligned_certificate(W, W_p, W_a, config, matrix_fate.FLOW_ALIGN_TOL) else None

    times = _check_times(config.eta)
    t, found = matrix_fate.continue_flow(config, initial_state(config), 0.0, times, judge, max_evaluations=None)
    if t is None:
        return Observation(config.eta, False, float(times[-1]), f"not in the origin box by t = {times[-1]:.4g}")
    how = "in the origin box" if found else "certificate A: aligned modes in p₊'s region (numerical)"
    return Observation(config.eta, bool(found), t, how)


def eigen_threshold(p0: float, s0: float, alpha_p: float, sigma2: float, tau: float, rel_tol: float = REL_TOL) -> Threshold:
    """The located collapse threshold of the mode (p0, s0) at fixed τ, beside η*."""
    star = eta_critical(tau, sigma2)
    return bisect_threshold(lambda eta: eigen_collapse(p0, s0, alpha_p, eta, sigma2, tau), star,
                            BRACKET[0] * star, BRACKET[1] * star, rel_tol)


def matrix_threshold(config: LinearConfig, rel_tol: float = REL_TOL) -> Threshold:
    """The located collapse threshold of the matrix flow from `initial_state(config)`, beside η* (τ = 1)."""
    star = matrix_fate.eta_star(config)
    return bisect_threshold(lambda eta: matrix_collapse(replace(config, eta=eta)), star,
                            BRACKET[0] * star, BRACKET[1] * star, rel_tol)
