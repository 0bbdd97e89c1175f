"""Fixed points of the eigenvalue dynamics (Eqs. 11–12) at a fixed τ, their stability, the regimes.

With k = 1 + σ² the (p, s) system is
    dp/dt = α_p s (τ − k p) − η p,        ds/dt = 2 p s (τ − k p) − 2 η s.
ds/dt = 0 needs s = 0 or p(τ − k p) = η. On s = 0, dp/dt = −η p, so (0, 0) is the only point there
when η > 0. Otherwise dp/dt = 0 gives s = p²/α_p, and p solves k p² − τ p + η = 0:
    p± = [τ ± √(τ² − 4 η k)] / (2k)      (paper Sec. 3.4; thesis Ch. 3, case 2),
real iff η ≤ η* = τ²/(4k). At η = 0 the fixed points are not isolated: they fill the two lines
s = 0 (collapse) and p = τ/k.

Stability is read off the Jacobian J of (dp/dt, ds/dt). At p± the eigenvalues reduce to −2η and
η − k p², so p₊ is stable and p₋ a saddle (they merge at η = η*); at (0, 0) they are −η and −2η.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from linear_dynamics.params import EigenParams, check_nonnegative

REGIMES = ("no-weight-decay", "moderate", "too-large")
ON_PARABOLA_RTOL = 1e-12


def eta_critical(tau: float = 1.0, sigma2: float = 0.0) -> float:
    """η* = τ²/(4(1+σ²)): the largest weight decay with a non-collapsed fixed point. Independent of α_p."""
    check_nonnegative("tau", tau)
    check_nonnegative("sigma2", sigma2)
    return tau**2 / (4 * (1 + sigma2))


def regime(eta: float, tau: float = 1.0, sigma2: float = 0.0) -> str:
    """'no-weight-decay' (η = 0), 'moderate' (0 < η ≤ η*) or 'too-large' (η > η*: collapse is certain)."""
    check_nonnegative("eta", eta)
    if eta == 0:
        return "no-weight-decay"
    return "moderate" if eta <= eta_critical(tau, sigma2) else "too-large"


def p_roots(eta: float, tau: float = 1.0, sigma2: float = 0.0) -> tuple[float, float] | None:
    """(p₋, p₊) = [τ ∓ √(τ² − 4η(1+σ²))]/(2(1+σ²)), or None when η > η* (no real roots)."""
    k = 1 + sigma2
    disc = tau**2 - 4 * eta * k
    if disc < 0:
        return None
    root = math.sqrt(disc)
    # p₋ via the product of the roots (η/k) avoids cancellation when 4ηk ≪ τ².
    p_plus = (tau + root) / (2 * k)
    p_minus = eta / (k * p_plus) if p_plus > 0 else 0.0
    return p_minus, p_plus


def jacobian(p: float, s: float, alpha_p: float, eta: float, sigma2: float = 0.0, tau: float = 1.0) -> np.ndarray:
    """∂(dp/dt, ds/dt)/∂(p, s) of Eqs. 11–12 at fixed τ."""
    k = 1 + sigma2
    return np.array([
        [-alpha_p * k * s - eta, alpha_p * (tau - k * p)],
        [2 * s * (tau - 2 * k * p), 2 * p * (tau - k * p) - 2 * eta],
    ])


def ema_jacobian(p: float, w: float, a: float, alpha_p: float, eta: float, sigma2: float, beta: float) -> np.ndarray:
    """∂(dp/dt, dw/dt, da/dt)/∂(p, w, a) of Eqs. 11–13 with EMA in the regular coordinates of
    `eigen_ode.ema_mode_rhs` (s = w², τ = a/w; W_a's component a follows Eq. 4)."""
    k = 1 + sigma2
    drive = a - 2 * k * p * w  # ∂/∂w of w(a − kpw), and ∂/∂p of p(a − kpw)
    return np.array([
        [-alpha_p * k * w**2 - eta, alpha_p * drive, alpha_p * w],
        [drive, -k * p**2 - eta, p],
        [0.0, beta, -beta],
    ])


@dataclass(frozen=True)
class FixedPoint:
    """An isolated fixed point; `stable` means every Jacobian eigenvalue is < 0 (asymptotic stability)."""

    name: str  # "collapse" (p = 0), "p-" or "p+" ("p-=p+" where they merge at η = η*)
    p: float
    s: float
    eigenvalues: tuple[float, ...]
    stable: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "p": self.p, "s": self.s, "stable": self.stable,
                "eigenvalues": list(self.eigenvalues)}


@dataclass(frozen=True)
class FixedLine:
    """A line of fixed points (η = 0 only) and where it attracts transversally.

    On s = 0 the transverse eigenvalue is 2p(τ − kp): attracting for p < 0 or p > τ/k.
    On p = τ/k it is −α_p k s: attracting for every s > 0.
    """

    name: str  # "collapse" (s = 0) or "non-collapsed" (p = τ/k)
    p: float | None  # the constant p of a vertical line, else None
    s: float | None  # the constant s of a horizontal line, else None
    attracting_where: str

    def to_dict(self) -> dict:
        return {"name": self.name, "p": self.p, "s": self.s, "attracting_where": self.attracting_where}


@dataclass(frozen=True)
class FixedPointReport:
    regime: str
    eta_critical: float
    fixed_points: tuple[FixedPoint, ...]
    fixed_lines: tuple[FixedLine, ...] = field(default=())

    def to_dict(self) -> dict:
        out = {"regime": self.regime, "eta_critical": self.eta_critical,
               "fixed_points": [fp.to_dict() for fp in self.fixed_points]}
        if self.regime == "no-weight-decay":
            out["fixed_lines"] = [line.to_dict() for line in self.fixed_lines]
        return out


def _point(name, p, s, alpha_p, eta, sigma2, tau) -> FixedPoint:
    values = np.linalg.eigvals(jacobian(p, s, alpha_p, eta, sigma2, tau))
    # The Jacobian's eigenvalues are real at every fixed point (−η, −2η at the origin; −2η, η − kp²
    # at p±), so dropping the imaginary round-off loses nothing.
    values = tuple(sorted(float(v) for v in values.real))
    return FixedPoint(name, float(p), float(s), values, stable=all(v < 0 for v in values))


def fixed_points(alpha_p: float, eta: float, sigma2: float = 0.0, tau: float = 1.0) -> FixedPointReport:
    """Every fixed point of Eqs. 11–12 at fixed τ with its Jacobian eigenvalues, the regime and η*.

    η > 0: the origin, then p₋ and p₊ on the parabola s = p²/α_p when η ≤ η* (one point when they
    coincide at η = η* or τ = 0). η = 0: no isolated points; the two fixed lines are reported instead.
    """
    EigenParams(alpha_p, eta, sigma2, tau=tau)  # validates
    report = dict(regime=regime(eta, tau, sigma2), eta_critical=eta_critical(tau, sigma2))
    if eta == 0:
        k = 1 + sigma2
        lines = (
            FixedLine("collapse", None, 0.0, f"p < 0 or p > {tau / k:g}"),
            FixedLine("non-collapsed", tau / k, None, "s > 0"),
        )
        return FixedPointReport(fixed_points=(), fixed_lines=lines, **report)
    points = [_point("collapse", 0.0, 0.0, alpha_p, eta, sigma2, tau)]
    roots = p_roots(eta, tau, sigma2)
    if roots is not None:
        p_minus, p_plus = roots
        named = [("p-=p+", p_plus)] if p_minus == p_plus else [("p-", p_minus), ("p+", p_plus)]
        points += [_point(name, p, p**2 / alpha_p, alpha_p, eta, sigma2, tau) for name, p in named]
    return FixedPointReport(fixed_points=tuple(points), **report)


def parabola_velocity(p, alpha_p: float, eta: float, sigma2: float = 0.0, tau: float = 1.0):
    """dp/dt on the parabola s = p²/α_p (where weight decay drives every trajectory):
    p²(τ − kp) − ηp = −k p (p − p₋)(p − p₊)."""
    p = np.asarray(p, dtype=float)
    return p**2 * (tau - (1 + sigma2) * p) - eta * p


def collapses_closed_form(p0, s0, alpha_p: float, eta: float, sigma2: float = 0.0, tau: float = 1.0):
    """Whether (p0, s0) ends in collapse (s → 0), where a closed form decides it (fixed τ).

    - η = 0: c = s0 − p0²/α_p is conserved (Eq. 14), the state moves along s = p²/α_p + c and stops on
      the first fixed line it meets. Collapse iff s0 = 0, or c < 0 and p0 < 0, or c ≤ −τ²/(k²α_p)
      (the curve meets s = 0 before p = τ/k), or c = 0 and p0 ≤ 0 (p → 0⁻ along the parabola).
    - η > η*: always (only the origin is left).
    - 0 < η ≤ η* on the parabola (c = 0 to a relative ON_PARABOLA_RTOL): collapse iff p0 < p₋ (the saddle).
    Off the parabola with 0 < η ≤ η* the basin boundary is the saddle's stable manifold, which has no
    closed form: ValueError (integrate with `integrate_eigen` instead).
    """
    EigenParams(alpha_p, eta, sigma2, tau=tau)  # validates
    p0, s0 = np.broadcast_arrays(np.asarray(p0, dtype=float), np.asarray(s0, dtype=float))
    for name, arr in (("p0", p0), ("s0", s0)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
    if np.any(s0 < 0):
        raise ValueError("s0 must be >= 0 (an eigenvalue of F = W X Wᵀ)")
    c = s0 - p0**2 / alpha_p
    k = 1 + sigma2
    if eta == 0:
        return (s0 == 0) | ((c < 0) & (p0 < 0)) | (c <= -(tau / k) ** 2 / alpha_p) | ((c == 0) & (p0 <= 0))
    roots = p_roots(eta, tau, sigma2)
    if roots is None:
        return np.ones(p0.shape, dtype=bool)
    # "On the parabola" is relative: c within ON_PARABOLA_RTOL of the larger of s0 and p0²/α_p (a few
    # rounding errors of s0 = p0²/α_p), so that tiny states (η = 1e-7: (5e-8, 5e-13) is far above it) are judged.
    scale = np.maximum(s0, p0**2 / alpha_p)
    if np.any(np.abs(c) > ON_PARABOLA_RTOL * scale):
        raise ValueError("p0, s0: with 0 < eta <= eta* the basin has a closed form only on the parabola s0 = p0²/alpha_p")
    return p0 < roots[0]
