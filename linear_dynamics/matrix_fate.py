"""Verdicts of the matrix model (Eqs. 2–4), decided by certificates on the dynamics, not by a snapshot.

The run is 'collapsed' when ‖W‖ → 0 and 'non-collapsed' when it does not (some mode of F survives).
A verdict is given only once a stated certificate holds; the flow is integrated past t_end until one
does, else the verdict is 'undecided' with the reason. k = 1 + σ², η* = 1/(4k) (τ = 1).

Certificates that hold for every state of a variant (basis: theorem; decided at t = 0):
  G1 no stop-gradient, σ² + η > 0: d‖W‖²/dt = −2 vec(W)ᵀH vec(W) ≤ −2(σ² + η)‖W‖² (Thm 2, H ⪰ (σ²+η)I).
  G2 no predictor (W_p ≡ I): dW/dt = W_a − (k + η)W is linear; SimSiam contracts at rate σ² + η; with
     EMA the matrix [[−(k+η), 1], [β, −β]] has eigenvalues of negative real part iff σ² + η > 0.
     At σ² + η = 0 nothing moves W for good (W constant, with or without stop-gradient; with EMA
     βW + W_a is conserved): non-collapsed.
  G3 stop-gradient with a predictor, η > η*: with x = ‖W_pW‖, y = ‖W‖, z = ‖W_a‖,
     d‖W‖²/dt = 2⟨W_pW, W_a⟩ − 2k x² − 2η y² ≤ z²/(2k) − 2η y² (maximised over x). SimSiam (z = y):
     d‖W‖²/dt ≤ −2(η − η*)‖W‖². EMA: V = ‖W‖² + (2η/β)‖W_a‖² has dV/dt ≤ −(quadratic form in y, z),
     positive definite iff η > η*. Whatever W_p does, W → 0: collapsed.
  G4 stop-gradient with a gradient-trained predictor (not projected onto symmetric matrices), η = 0:
     W Wᵀ − W_pᵀW_p/α_p = C is conserved (Thm 1), so ‖W‖² ≥ λ_max(C); λ_max(C) > 0: non-collapsed.
Certificates on the state at a checked time:
  B  (theorem) the origin box, η > 0, trained predictor: ‖W_p‖_F ≤ a = η/2, ‖W‖_F ≤ b, ‖W_a‖_F ≤ b (EMA),
     b² = ηa/(2α_p(1 + ka)). On its faces d‖W_p‖/dt ≤ α_p b²(1 + ka) − ηa < 0, d‖W‖/dt ≤ (a − η)b < 0,
     d‖W_a‖/dt ≤ β(‖W‖ − ‖W_a‖) ≤ 0; inside, (‖W‖, ‖W_a‖) is bounded by a stable linear system: collapsed.
  A  (numerical) aligned modes at p₊: stop-gradient with a predictor, W_p symmetric and commuting with
     F = WWᵀ, and (EMA) W_a = T W with T = Σ τ_j u_j u_jᵀ, each to a relative `tol` (assumptions A1–A3
     of Thm 3, which reduce Eqs. 2–4 to Eqs. 11–13 mode by mode); the modes p_j = u_jᵀW_pu_j,
     s_j = u_jᵀFu_j (τ_j) are handed to the eigen ODE's trapping regions (`fate.regions`). A mode
     counts for p₊ only if every corner of the box of relative half-width `tol` around it does too;
     one such mode: non-collapsed. Numerical, because the reduction holds only up to `tol`.
Flow: `tol` = FLOW_ALIGN_TOL; past t_end the checks follow the eigen ODE's cadence (`fate.check_times`)
for at most fate.MAX_SCALES slow time scales and MAX_EVALUATIONS right-hand-side evaluations.
SGD (`sgd_fate`, basis always numerical): 'diverged' only if the run's own weights blow up (`sgd.BLOW_UP`);
its message names lr·κ at the last saved step when above 2, κ (`sgd_curvature`) the largest curvature
of the population loss along W or along W_p (scaled by its lr ratio α_p), weight decay included:
gradient descent on a quadratic of curvature κ diverges for lr·κ > 2, and by Cauchy interlacing the
Hessian's top eigenvalue is at least each block's. Otherwise, in the
variants G1–G3: 'collapsed' if the sampled ‖W(T)‖ ≤ ‖W(0)‖ e^{−rT/2}, at least half the flow's
guaranteed rate r, over a window T ≥ 2/r (one e-fold at that rate), else 'undecided'. In the others
B and A are applied to the sampled states (the verdict holding at the last one, dated from the first
saved time from which it held); if neither holds at the end, the gradient flow is continued from
SGD's last state as above: the verdict is then the fate of the state SGD reached (minibatch noise
keeps W_p from aligning to FLOW_ALIGN_TOL itself).
"""
import math
from dataclasses import dataclass

import numpy as np

from analysis import metrics
from linear_dynamics import fate as eigen_fate
from linear_dynamics.matrix_flow import flow_rhs, integrate_flow
from linear_dynamics.params import EigenParams, LinearConfig

COLLAPSED, NON_COLLAPSED, UNDECIDED, DIVERGED = "collapsed", "non-collapsed", "undecided", "diverged"
THEOREM, NUMERICAL = eigen_fate.THEOREM, eigen_fate.NUMERICAL
FLOW_ALIGN_TOL = 1e-3
MAX_EVALUATIONS = 60_000  # right-hand-side evaluations of the flow past t_end


@dataclass(frozen=True)
class MatrixFate:
    """The verdict of one run, the certificate (`rule`) it rests on or why there is none, its basis
    ('theorem' | 'numerical'; None when undecided), the time from which it held (NaN when undecided),
    and, when certificate A decided, how many modes of F it places at p₊."""

    verdict: str
    basis: str | None
    rule: str
    t_decided: float
    modes_at_p_plus: int | None = None

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "basis": self.basis, "rule": self.rule,
                "t_decided": self.t_decided if math.isfinite(self.t_decided) else None,
                "modes_at_p_plus": self.modes_at_p_plus}


def eta_star(config: LinearConfig) -> float:
    """η* = 1/(4(1+σ²)) at τ = 1 (SimSiam, and Eq. 13's fixed point with EMA)."""
    return 1 / (4 * (1 + config.sigma2))


def eigen_params(config: LinearConfig) -> EigenParams:
    """The eigen ODE that the aligned modes of `config` follow (τ = 1 for SimSiam, β with EMA)."""
    if config.ema:
        return EigenParams(config.alpha_p, config.eta, config.sigma2, beta=config.beta)
    return EigenParams(config.alpha_p, config.eta, config.sigma2, tau=1.0)


def guaranteed_rate(config: LinearConfig) -> float | None:
    """r > 0 with ‖W(t)‖ → 0 at least like e^{−rt} for every start (G1–G3; for EMA in G2/G3 a rate of
    the Lyapunov function, reported as the slower of the two), or None when no global bound applies."""
    decay = config.sigma2 + config.eta
    if not config.stop_grad or not config.predictor:
        if decay <= 0:
            return None
        if config.stop_grad and config.ema:  # G2 with EMA: the slower eigenvalue of [[−(k+η), 1], [β, −β]]
            return float(-np.linalg.eigvals([[-(1 + decay), 1.0], [config.beta, -config.beta]]).real.max())
        return decay
    if config.eta > eta_star(config):
        if not config.ema:
            return config.eta - eta_star(config)
        # G3 with EMA: V = y² + c z², c = 2η/β; dV/dt ≤ −qᵀMq with M = [[2η, −2η], [−2η, 4η − 1/(2k)]].
        M = np.array([[2 * config.eta, -2 * config.eta], [-2 * config.eta, 4 * config.eta - 2 * eta_star(config)]])
        weights = np.diag([1.0, 2 * config.eta / config.beta])
        return float(np.linalg.eigvals(np.linalg.solve(weights, M)).real.min() / 2)
    return None


def global_certificate(config: LinearConfig, W0: np.ndarray, W_p0: np.ndarray) -> MatrixFate | None:
    """G1–G4 of the module docstring from the initial state, or None."""
    decay = config.sigma2 + config.eta
    if not config.stop_grad and decay > 0:
        return MatrixFate(COLLAPSED, THEOREM, f"G1 (Thm 2): no stop-gradient contracts ‖W‖ at rate σ²+η = {decay:g}", 0.0)
    if not config.predictor:
        if decay > 0:
            return MatrixFate(COLLAPSED, THEOREM, f"G2: without a predictor W contracts (σ²+η = {decay:g} > 0)", 0.0)
        if np.linalg.norm(W0) > 0:
            return MatrixFate(NON_COLLAPSED, THEOREM, "G2: σ²+η = 0 without a predictor: W does not move for good", 0.0)
        return None
    if not config.stop_grad:
        return None
    if config.eta > eta_star(config):
        return MatrixFate(COLLAPSED, THEOREM, f"G3: η = {config.eta:g} > η* = {eta_star(config):.6g}: "
                          f"‖W‖ → 0 from every state", 0.0)
    if config.eta == 0 and not config.symmetric_predictor:
        largest = float(np.linalg.eigvalsh(W0 @ W0.T - W_p0.T @ W_p0 / config.alpha_p).max())
        if largest > 0:
            return MatrixFate(NON_COLLAPSED, THEOREM, f"G4 (Thm 1): η = 0 and λ_max(WWᵀ − W_pᵀW_p/α_p) = "
                              f"{largest:.3g} > 0 bounds ‖W‖² from below", 0.0)
    return None


def origin_box(config: LinearConfig) -> tuple[float, float]:
    """(a, b) of certificate B: ‖W_p‖_F ≤ a, ‖W‖_F (and ‖W_a‖_F) ≤ b. Needs η > 0 and a trained predictor."""
    if config.eta <= 0 or not config.predictor or not config.stop_grad:
        raise ValueError("the origin box needs eta > 0, a trained predictor and stop-gradient")
    a = config.eta / 2
    return a, math.sqrt(config.eta * a / (2 * config.alpha_p * (1 + (1 + config.sigma2) * a)))


def in_origin_box(W, W_p, W_a, config: LinearConfig) -> bool:
    a, b = origin_box(config)
    return bool(np.linalg.norm(W_p) <= a and np.linalg.norm(W) <= b and (not config.ema or np.linalg.norm(W_a) <= b))


def aligned_modes(W, W_p, W_a, config: LinearConfig):
    """(misalignment, modes) under A1–A3: misalignment = the largest of asymmetry(W_p), the relative
    commutator ‖[F, W_p]‖/(‖F‖‖W_p‖) and (EMA) ‖W_a − TW‖/‖W_a‖; modes = the eigen ODE's states
    ((p, ln s) rows, or (p, w, a) with EMA), one column per eigenvector of F."""
    F = W @ W.T
    s, U = np.linalg.eigh(F)
    s = np.maximum(s, 0.0)
    p = np.einsum("ij,ik,kj->j", U, W_p, U)
    misalignment = max(metrics.asymmetry(W_p), metrics.relative_commutator(F, W_p))
    if not config.ema:
        with np.errstate(divide="ignore"):
            return misalignment, np.stack([p, np.log(s)])
    G = np.einsum("ij,ik,kj->j", U, W_a @ W.T, U)  # u_jᵀ W_a Wᵀ u_j = τ_j s_j
    tau = np.divide(G, s, out=np.zeros_like(s), where=s > 0)
    residual = W_a - U @ np.diag(tau) @ U.T @ W
    misalignment = max(misalignment, float(np.linalg.norm(residual) / max(np.linalg.norm(W_a), 1e-300)))
    w = np.sqrt(s)
    return misalignment, np.stack([p, w, tau * w])


def _corners(modes: np.ndarray, tol: float, ema: bool) -> np.ndarray:
    """Every corner of the box of relative half-width tol around each mode: shape (2^d, d, n). In the
    fixed-τ coordinates (p, ln s) a relative change of s is the additive change ln(1 ± tol) of ln s."""
    d = modes.shape[0]
    out = []
    for signs in np.ndindex(*(2,) * d):
        shift = np.where(np.array(signs) == 1, tol, -tol)
        corner = modes + shift[:, None] * np.abs(modes) if ema else np.stack(
            [modes[0] + shift[0] * np.abs(modes[0]), modes[1] + np.log1p(shift[1])])
        out.append(corner)
    return np.stack(out)


def aligned_certificate(W, W_p, W_a, config: LinearConfig, tol: float) -> MatrixFate | None:
    """Certificate A at one state (None when it does not hold); t_decided is left NaN for the caller."""
    if not (config.stop_grad and config.predictor):
        return None
    misalignment, modes = aligned_modes(W, W_p, W_a, config)
    if misalignment > tol:
        return None
    region = eigen_fate.regions(eigen_params(config))
    survive = np.ones(modes.shape[1], dtype=bool)
    for corner in _corners(modes, tol, config.ema):
        names, _ = region(corner)
        survive &= np.isin(names.astype(str), ("p+", "non-collapsed"))
    count = int(survive.sum())
    if count == 0:
        return None
    return MatrixFate(NON_COLLAPSED, NUMERICAL, f"A: aligned to {misalignment:.2g} ≤ {tol:g}; {count} of "
                      f"{modes.shape[1]} modes in the eigen ODE's p₊ region (margin {tol:g})", math.nan, count)


def state_certificate(W, W_p, W_a, config: LinearConfig, tol: float) -> MatrixFate | None:
    """B, then A, at one state."""
    if config.eta > 0 and config.predictor and config.stop_grad and in_origin_box(W, W_p, W_a, config):
        a, b = origin_box(config)
        return MatrixFate(COLLAPSED, THEOREM, f"B: in the origin box ‖W_p‖ ≤ {a:.3g}, ‖W‖ ≤ {b:.3g}", math.nan)
    return aligned_certificate(W, W_p, W_a, config, tol)


def _settled(t, labels) -> MatrixFate | None:
    """The certificate holding at the last time, dated from the first time from which it (the same
    verdict) held without a break; None when none holds at the end."""
    if labels[-1] is None:
        return None
    start = len(labels) - 1
    while start > 0 and labels[start - 1] is not None and labels[start - 1].verdict == labels[-1].verdict:
        start -= 1
    last = labels[-1]
    return MatrixFate(last.verdict, last.basis, last.rule, float(t[start]), last.modes_at_p_plus)


def flow_check_times(config: LinearConfig, t_end: float) -> np.ndarray:
    """Times past t_end at which the continued flow is checked: the eigen ODE's cadence for the same
    parameters; for SimSiam at η = 0 (no isolated attractor) geometric from t_end/10 to 100 t_end."""
    params = eigen_params(config)
    if params.ema or params.eta > 0:
        return eigen_fate.check_times(t_end, params)
    steps = int(np.ceil(np.log(1000) / np.log(eigen_fate.CHECK_GROWTH)))
    return t_end + 0.1 * t_end * eigen_fate.CHECK_GROWTH ** np.arange(steps + 1)


def continue_flow(config: LinearConfig, state, t_now: float, checks: np.ndarray, judge,
                  max_evaluations: int | None = MAX_EVALUATIONS):
    """Integrate Eqs. 2–4 (`matrix_flow.integrate_flow`) from (W, W_p, W_a) = state at t_now, checking
    judge(W, W_p, W_a) at each time of `checks` (chunks of fate.CHECKS_PER_CALL); returns (time, answer)
    of the first check where judge answers (not None), or (None, reason) when the checks or
    max_evaluations (None: no cap) run out."""
    _, _, unpack = flow_rhs(config, state)
    evaluations = 0
    for start in range(0, checks.size, eigen_fate.CHECKS_PER_CALL):
        chunk = checks[start:start + eigen_fate.CHECKS_PER_CALL]
        try:
            ys, used = integrate_flow(config, state, t_now, chunk)
        except FloatingPointError as err:
            return None, f"the continued flow failed ({err})"
        evaluations += used
        for t, y in zip(chunk, ys):
            answer = judge(*unpack(y))
            if answer is not None:
                return float(t), answer
        state, t_now = unpack(ys[-1]), chunk[-1]
        if max_evaluations is not None and evaluations >= max_evaluations:
            return None, f"no certificate by t = {t_now:.4g} ({evaluations} evaluations past t_end)"
    return None, f"no certificate by t = {t_now:.4g} (the last check)"


def flow_fate(run) -> MatrixFate:
    """The verdict of a gradient-flow LinearRun (module docstring), integrating past t_end if needed."""
    config = run.config
    known = global_certificate(config, run.W[0], run.W_p[0])
    if known is not None:
        return known

    def judge(W, W_p, W_a):
        return state_certificate(W, W_p, W_a, config, FLOW_ALIGN_TOL)

    found = _settled(run.t, [judge(*state) for state in zip(run.W, run.W_p, run.W_a)])
    if found is not None:
        return found
    t, verdict = continue_flow(config, (run.W[-1], run.W_p[-1], run.W_a[-1]), float(run.t[-1]),
                               flow_check_times(config, float(run.t[-1])), judge)
    if t is None:
        return MatrixFate(UNDECIDED, None, verdict, math.nan)
    return MatrixFate(verdict.verdict, verdict.basis, verdict.rule, t, verdict.modes_at_p_plus)


def sgd_curvature(W, W_p, config: LinearConfig) -> float:
    """κ: the largest curvature of the SGD objective (loss + weight decay) along W, or along W_p times
    its lr ratio α_p, at (W, W_p), for the population loss (E[x1x1ᵀ] = kI, E[x1x2ᵀ] = I).
    Along W with stop-gradient: k‖W_p‖₂² + η; without: λ_max(σ²(W_pᵀW_p + I) + W̃_pᵀW̃_p) + η (Thm 2's H).
    Along W_p: α_p k ‖W‖₂² + η (its weight decay η/α_p, times α_p)."""
    k = 1 + config.sigma2
    if config.stop_grad:
        along_W = k * np.linalg.norm(W_p, 2) ** 2 + config.eta
    else:
        eye = np.eye(W_p.shape[0])
        H = config.sigma2 * (W_p.T @ W_p + eye) + (W_p - eye).T @ (W_p - eye)
        along_W = float(np.linalg.eigvalsh(H).max()) + config.eta
    along_W_p = config.alpha_p * k * np.linalg.norm(W, 2) ** 2 + config.eta if config.predictor else 0.0
    return float(max(along_W, along_W_p))


def sgd_fate(run, lr: float, diverged_at: float | None = None, why: str = "") -> MatrixFate:
    """The verdict of an SGD LinearRun (module docstring); diverged_at/why come from the SGD loop."""
    if diverged_at is not None:
        return MatrixFate(DIVERGED, NUMERICAL, why, diverged_at)
    config = run.config
    rate = guaranteed_rate(config)
    if rate is not None:
        bound = np.linalg.norm(run.W[0]) * np.exp(-rate * run.t / 2)
        below = (run.W_norm <= bound) & (run.t >= 2 / rate)
        if not below[-1]:
            return MatrixFate(UNDECIDED, None, f"sampled ‖W‖ has not fallen like e^(−rt/2) over t ≥ 2/r (r = {rate:.3g}, "
                              f"the flow's guaranteed rate) by t = {run.t[-1]:g}", math.nan)
        start = len(below) - np.argmin(below[::-1]) if not below.all() else 0
        return MatrixFate(COLLAPSED, NUMERICAL, f"sampled ‖W‖ ≤ ‖W(0)‖ e^(−rt/2), r = {rate:.3g} the flow's "
                          f"guaranteed rate", float(run.t[start]))

    def judge(W, W_p, W_a):
        return state_certificate(W, W_p, W_a, config, FLOW_ALIGN_TOL)

    found = _settled(run.t, [judge(*state) for state in zip(run.W, run.W_p, run.W_a)])
    if found is not None:
        return MatrixFate(found.verdict, NUMERICAL, found.rule, found.t_decided, found.modes_at_p_plus)
    end = float(run.t[-1])
    t, verdict = continue_flow(config, (run.W[-1], run.W_p[-1], run.W_a[-1]), end, flow_check_times(config, end), judge)
    if t is None:
        return MatrixFate(UNDECIDED, None, f"flow continued from SGD's last state: {verdict}", math.nan)
    return MatrixFate(verdict.verdict, NUMERICAL, f"flow continued from SGD's state at t = {end:g}: {verdict.rule}",
                      t, verdict.modes_at_p_plus)
