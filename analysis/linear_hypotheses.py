"""H1–H7 (SPEC §5) on the linear model: matrix flow, minibatch SGD and the eigenvalue ODE.

Each check returns `Verdict`s (analysis.verdicts): the theory's prediction, what was observed with
the numbers behind it, and holds / fails / inconclusive by the rule written beside the check. Model
verdicts (collapsed or not) are the certificates of `linear_dynamics` (matrix_fate, fate), each with
its basis (theorem / numerical) in the evidence. The linear side is small (n1 = 16, n2 = 8; a 900-mode
grid for the ODE) so that it runs in seconds.
"""
from dataclasses import replace

import numpy as np

from analysis import verdicts as v
from analysis.theory import default_horizon
from analysis.trajectory import predictor_trajectory
from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.matrix_fate import eta_star
from linear_dynamics.matrix_model import simulate_flow
from linear_dynamics.params import EigenParams, LinearConfig
from linear_dynamics.threshold import LOCATED, UNRESOLVED, eigen_threshold, matrix_threshold

# Matrix model: linear_dynamics' defaults (η = 0.02 < η* = 1/6 at σ² = 0.5, every mode of F above
# the parabola) over 30 time units; verdicts that need longer are decided by integrating further.
BASE = LinearConfig(t_end=30.0)
SGD_LR, SGD_BATCH = 0.1, 128   # 300 SGD steps; the flow's verdicts are reproduced at this step size
N_SAVE = 31

# H5: the collapse threshold in η, located by bisection (linear_dynamics.threshold), per setting.
# Matrix flow: (σ², α_p) at τ = 1 (SimSiam), from BASE's initial state. Eigen ODE: (σ², τ, α_p) from a
# start with a small predictor eigenvalue and the signal of the η = 0 fixed point, p0 = 0.1τ/k and
# s0 = (τ/k)²/α_p (k = 1+σ²), which for every η < η* climbs past the saddle while c = s − p²/α_p > 0.
MATRIX_H5_SETTINGS = ((0.5, 1.0), (0.0, 1.0), (1.0, 3.0))
EIGEN_H5_SETTINGS = ((0.5, 1.0, 1.0), (0.0, 1.0, 1.0), (1.0, 0.5, 3.0), (0.25, 2.0, 0.3))
# With an EMA target (Eq. 13, τ(0) = 1), at σ² = 0.5, α_p = 1 from the same start, for each β: η* = 1/(4k)
# whatever β (a fixed point needs ds/dt = 0, so dτ/dt = β(1 − τ) = 0 there: τ = 1; above η*, G3's
# V = w² + (2η/β)a² decreases), while the basin moves with β (the control: tests/test_linear_threshold.py).
EIGEN_H5_EMA_SIGMA2, EIGEN_H5_EMA_BETAS = 0.5, (1.0, 0.3, 0.1)

# Eigenvalue ODE (H6, H7): a grid of initial modes, p0 in (0, 1], s0 log-spaced over [1e-4, 1], and
# a reference mode for speeds. SimSiam's τ ≡ 1 unless an EMA rate β is given.
GRID_P0, GRID_S0 = (grid.ravel() for grid in np.meshgrid(np.linspace(1 / 30, 1, 30), np.geomspace(1e-4, 1, 30)))
REFERENCE_MODE = (0.1, 0.1)
ODE_SIGMA2 = BASE.sigma2
FRACTION_TOL = 0.01   # collapsed fractions closer than 1% of the grid count as equal
SPEED_TOL = 0.1       # times to 90% closer than 10% count as equal
ALPHAS = (0.3, 1.0, 3.0)
BETAS = (None, 1.0, 0.1)  # None: SimSiam (no EMA); then weaker to stronger EMA
ODE_ETAS = (0.0, 0.05)
SPEED_T_END, SPEED_N_SAVE = 200.0, 401


def _simulate(config: LinearConfig, method: str):
    if method == "flow":
        return simulate_flow(config, n_save=N_SAVE)
    from linear_dynamics.sgd import simulate_sgd  # torch, imported only when SGD is asked for
    return simulate_sgd(config, batch=SGD_BATCH, lr=SGD_LR, n_save=N_SAVE)


def _run_evidence(run) -> dict:
    return {"W_norm_first": float(run.W_norm[0]), "W_norm_last": float(run.W_norm[-1]), **run.fate.to_dict()}


def _verdict_text(run) -> str:
    return f"{run.verdict} ({run.fate.basis or 'no certificate'}: {run.fate.rule})"


def collapse_outcome(model_verdict: str) -> str:
    """H1, H2: holds if the variant's model verdict is 'collapsed', fails if 'non-collapsed',
    inconclusive if 'undecided' or 'diverged' (no verdict on the dynamics)."""
    return {"collapsed": v.HOLDS, "non-collapsed": v.FAILS}.get(model_verdict, v.INCONCLUSIVE)


def _collapse_check(hypothesis, setting, prediction, run, control) -> v.Verdict:
    evidence = {"variant": _run_evidence(run), "with_predictor_and_stopgrad": _run_evidence(control)}
    observation = (f"‖W‖ {run.W_norm[0]:.3g} → {run.W_norm[-1]:.3g} at t = {run.t[-1]:g}: {_verdict_text(run)}; "
                   f"control with predictor and stop-gradient: {control.verdict}")
    return v.Verdict(hypothesis, setting, prediction, observation, collapse_outcome(run.verdict), evidence)


def threshold_row_outcome(threshold) -> str:
    """H5 per setting: verdicts.threshold_outcome on the located bracket; inconclusive when an end of the
    first bracket is undecided (no certificate there says on which side the threshold lies)."""
    if threshold.status == UNRESOLVED:
        return v.INCONCLUSIVE
    return v.threshold_outcome(threshold.eta_threshold_observed, threshold.eta_critical, threshold.status == LOCATED)


def _threshold_row(threshold, **setting) -> dict:
    return {**setting, **threshold.as_dict(), "outcome": threshold_row_outcome(threshold)}


def _bracket_text(row: dict) -> str:
    """η_c against η*, and the certified bracket (each side's basis) with the undecided band between."""
    if row["status"] != LOCATED:
        return f"{row['status']}"
    star = row["eta_critical"]
    band = row["undecided_band"]
    return (f"η_c = {row['eta_threshold_observed']:.5g} vs η* = {star:.5g} "
            f"({row['eta_threshold_observed'] / star - 1:+.2%}; not collapsed at {row['eta_low'] / star:.5f}η* "
            f"({row['basis_low']}), collapsed at {row['eta_high'] / star:.5f}η* ({row['basis_high']})"
            + ("" if band is None else f", undecided {band[0] / star:.5f}–{band[1] / star:.5f}η*") + ")")


def _threshold_verdict(setting: str, prediction: str, rows: list,
                       shown=(("sigma2", "σ²"), ("tau", "τ"), ("alpha_p", "α_p"))) -> v.Verdict:
    observation = "; ".join(", ".join(f"{symbol} = {row[key]:g}" for key, symbol in shown) + ": " + _bracket_text(row)
                            for row in rows)
    return v.Verdict("H5", setting, prediction, observation, v.combine(row["outcome"] for row in rows),
                     {"tolerance": v.THRESHOLD_TOL, "settings": rows})


def _matrix_h5_flow() -> v.Verdict:
    """H5 on the matrix flow: the collapse threshold of BASE's start, located per (σ², α_p) setting."""
    rows = [_threshold_row(matrix_threshold(replace(BASE, sigma2=sigma2, alpha_p=alpha_p)), sigma2=sigma2, tau=1.0,
                           alpha_p=alpha_p) for sigma2, alpha_p in MATRIX_H5_SETTINGS]
    return _threshold_verdict("linear flow", f"collapse begins at η* = 1/(4(1+σ²)) (τ = 1), within "
                              f"{v.THRESHOLD_TOL:.0%}, for every α_p", rows)


def _matrix_h5_sgd() -> v.Verdict:
    """H5 with SGD: the verdicts at η*/2 and 2η* (a bracket: SGD's rate bound near η* is too slow to
    locate the threshold within a short run). holds if η*/2 does not collapse and 2η* does; fails if
    either says the opposite; inconclusive otherwise."""
    star = eta_star(BASE)
    below, above = _simulate(replace(BASE, eta=star / 2), "sgd"), _simulate(replace(BASE, eta=2 * star), "sgd")
    outcomes = (collapse_outcome(above.verdict), {v.HOLDS: v.FAILS, v.FAILS: v.HOLDS}.get(
        collapse_outcome(below.verdict), v.INCONCLUSIVE))
    return v.Verdict(
        "H5", "linear sgd", f"η = η*/2 = {star / 2:.3g}: no collapse; η = 2η* = {2 * star:.3g}: collapse",
        f"η*/2: {_verdict_text(below)}; 2η*: {_verdict_text(above)}", v.combine(outcomes),
        {"eta_critical": star, "below": _run_evidence(below), "above": _run_evidence(above)})


def _matrix_verdicts(method: str) -> list:
    setting = f"linear {method}"
    base = _simulate(BASE, method)
    no_predictor = _simulate(replace(BASE, predictor=False), method)
    no_stopgrad = _simulate(replace(BASE, stop_grad=False), method)
    out = [
        _collapse_check("H1", setting, "without a predictor (W_p ≡ I) ‖W‖ → 0", no_predictor, base),
        _collapse_check("H2", setting, "without stop-gradient ‖W‖ → 0 (Thm 2: H ⪰ (σ²+η)I)", no_stopgrad, base),
    ]
    # H3, H4: the control run's predictor, measured like a deep run's snapshots.
    traj = predictor_trajectory(base.W_p, base.F, steps=base.t)
    outcome, evidence = v.symmetry_outcome(traj.asymmetry)
    out.append(v.Verdict("H3", setting, f"W_p becomes symmetric: asymmetry → 0 (η = {BASE.eta:g})",
                         f"asymmetry {evidence['asymmetry_first']:.3g} → {evidence['asymmetry_last']:.3g} "
                         f"from t = 0 to {base.t[-1]:g}", outcome, evidence))
    outcome, evidence = v.alignment_outcome(traj.signal_alignment, traj.relative_commutator)
    out.append(v.Verdict("H4", setting, "eigenspaces of W_p and F align: signal directions aligned, ‖[F,W_p]‖ → 0 (Thm 3)",
                         f"alignment of the directions with s_j ≥ 1% of s_1 {evidence['signal_alignment_first']:.3g} → "
                         f"{evidence['signal_alignment_last']:.3g}; relative commutator "
                         f"{evidence['commutator_first']:.3g} → {evidence['commutator_last']:.3g}", outcome, evidence))
    out.append(_matrix_h5_flow() if method == "flow" else _matrix_h5_sgd())
    return out


def _eigen_h5() -> v.Verdict:
    """H5 on the ODE: the collapse threshold of the start (0.1τ/k, (τ/k)²/α_p), located per (σ², τ, α_p)
    by integrating the mode until it enters the origin box (linear_dynamics.threshold)."""
    rows = []
    for sigma2, tau, alpha_p in EIGEN_H5_SETTINGS:
        k = 1 + sigma2
        p0, s0 = 0.1 * tau / k, (tau / k) ** 2 / alpha_p
        rows.append(_threshold_row(eigen_threshold(p0, s0, alpha_p, sigma2, tau), sigma2=sigma2, tau=tau,
                                   alpha_p=alpha_p, p0=p0, s0=s0))
    return _threshold_verdict("eigenvalue ODE", f"collapse begins at η* = τ²/(4(1+σ²)), within {v.THRESHOLD_TOL:.0%}, "
                              f"for every α_p", rows)


def _eigen_h5_ema() -> v.Verdict:
    """H5 on the ODE with an EMA target: the collapse threshold of the same start, τ(0) = 1, located per β
    (linear_dynamics.threshold, each side certified: the origin box or p₊'s Lyapunov ellipsoid)."""
    sigma2 = EIGEN_H5_EMA_SIGMA2
    k = 1 + sigma2
    p0, s0 = 0.1 / k, 1 / k**2
    rows = [_threshold_row(eigen_threshold(p0, s0, 1.0, sigma2, 1.0, beta=beta), sigma2=sigma2, tau=1.0, alpha_p=1.0,
                           beta=beta, p0=p0, s0=s0) for beta in EIGEN_H5_EMA_BETAS]
    return _threshold_verdict("eigenvalue ODE, EMA", f"collapse begins at η* = 1/(4(1+σ²)) for every β (τ → 1 "
                              f"at every fixed point), within {v.THRESHOLD_TOL:.0%}", rows,
                              shown=(("sigma2", "σ²"), ("beta", "β")))


def _fraction_collapsed(params: EigenParams) -> float:
    traj = integrate_eigen(GRID_P0, GRID_S0, params, default_horizon(params.eta), n_save=2)
    return float(traj.collapsed.mean())


def _reference_curve(params: EigenParams):
    """s(t) of the reference mode on [0, SPEED_T_END]."""
    traj = integrate_eigen(*REFERENCE_MODE, params, SPEED_T_END, n_save=SPEED_N_SAVE)
    return traj.t, traj.s[:, 0]


def _time_to_90_percent(t, s) -> float:
    """First time s has covered 90% of its change from s(0) to s(t_end), interpolated linearly
    between saved times: how fast the mode trains."""
    if s[-1] == s[0]:
        return float(t[0])
    progress = (s - s[0]) / (s[-1] - s[0])
    i = int(np.argmax(progress >= 0.9))
    if i == 0:
        return float(t[0])
    return float(np.interp(0.9, progress[i - 1:i + 1], t[i - 1:i + 1]))


def _monotone(values, tol=0.0) -> tuple[bool, bool]:
    """(never increases by more than tol, decreases by more than tol overall)."""
    values = list(values)
    steady = all(b <= a + tol for a, b in zip(values, values[1:]))
    return steady, values[-1] < values[0] - tol


def predictor_lr_outcome(fractions, times) -> tuple[str, str, str]:
    """H6 over increasing α_p: (outcome, basin part, speed part).
    Basin: the collapsed fraction never rises by > FRACTION_TOL: holds if it also falls by > FRACTION_TOL
    overall, inconclusive if not; fails if it rises. Speed ("too large α_p slows s growth"): holds if the
    time for s to cover 90% of its change at the largest α_p exceeds the shortest time by > SPEED_TOL;
    fails if the largest α_p is the fastest; inconclusive otherwise. Overall: verdicts.combine."""
    steady, shrinks = _monotone(fractions, FRACTION_TOL)
    basin = v.FAILS if not steady else (v.HOLDS if shrinks else v.INCONCLUSIVE)
    times = list(times)
    if times[-1] > (1 + SPEED_TOL) * min(times):
        speed = v.HOLDS
    else:
        speed = v.FAILS if times[-1] == min(times) else v.INCONCLUSIVE
    return v.combine((basin, speed)), basin, speed


def _eigen_h6(eta: float) -> v.Verdict:
    """H6 on the ODE at weight decay η, α_p over ALPHAS. Basin: fraction of the grid whose fate is
    collapse. Speed: the reference mode's time to cover 90% of its change of s (`predictor_lr_outcome`).
    Its s(T)/s(0) is reported, not judged: s(T) → p²/α_p + c falls like 1/α_p by Eq. 14 alone."""
    params = [EigenParams(a, eta, ODE_SIGMA2, tau=1.0) for a in ALPHAS]
    fractions = [_fraction_collapsed(p) for p in params]
    curves = [_reference_curve(p) for p in params]
    times = [_time_to_90_percent(t, s) for t, s in curves]
    growth = [float(s[-1] / s[0]) for _, s in curves]
    outcome, basin, speed = predictor_lr_outcome(fractions, times)
    return v.Verdict(
        "H6", f"eigenvalue ODE, η = {eta:g}",
        "larger α_p: smaller collapsed fraction of the grid; too large α_p slows s (longer time to 90% of its change)",
        "α_p " + ", ".join(f"{a:g}: {f:.1%} collapsed, s reaches 90% at t = {t:.3g} (s ×{g:.3g})"
                           for a, f, t, g in zip(ALPHAS, fractions, times, growth))
        + f" — basin {basin}, speed {speed}",
        outcome, {"alpha_p": list(ALPHAS), "collapsed_fraction": fractions, "time_to_90_percent": times,
                  "s_growth": growth, "basin": basin, "speed": speed, "grid_modes": int(GRID_P0.size),
                  "reference_mode": list(REFERENCE_MODE)})


def ema_outcome(fractions, times) -> str:
    """H7 from no EMA to the strongest EMA: holds if the time to 90% grows strictly as the EMA
    strengthens and the collapsed fraction never rises by > FRACTION_TOL; fails otherwise."""
    steady, _ = _monotone(fractions, FRACTION_TOL)
    slower = all(b > a for a, b in zip(times, times[1:]))
    return v.HOLDS if (steady and slower) else v.FAILS


def _eigen_h7(eta: float) -> v.Verdict:
    """H7 on the ODE at weight decay η: no EMA (τ ≡ 1), then β over BETAS (stronger EMA = smaller β,
    τ from 1 by Eq. 13). Speed: time for the reference mode's s to cover 90% of its change.
    Region: fraction of the grid that collapses. Rule: `ema_outcome`."""
    params = [EigenParams(1.0, eta, ODE_SIGMA2, tau=1.0) if b is None else EigenParams(1.0, eta, ODE_SIGMA2, beta=b)
              for b in BETAS]
    fractions = [_fraction_collapsed(p) for p in params]
    times = [_time_to_90_percent(*_reference_curve(p)) for p in params]
    labels = ["no EMA" if b is None else f"β = {b:g}" for b in BETAS]
    return v.Verdict(
        "H7", f"eigenvalue ODE, η = {eta:g}",
        "stronger EMA (smaller β) trains slower and does not enlarge the collapsed region",
        "; ".join(f"{label}: s reaches 90% at t = {t:.3g}, {f:.1%} collapsed"
                  for label, t, f in zip(labels, times, fractions)),
        ema_outcome(fractions, times),
        {"beta": [b for b in BETAS], "time_to_90_percent": times, "collapsed_fraction": fractions,
         "grid_modes": int(GRID_P0.size)})


def linear_verdicts(sgd: bool = True) -> list:
    """Every linear-model check: matrix flow (and SGD) for H1–H5, the eigenvalue ODE for H5–H7."""
    out = _matrix_verdicts("flow")
    if sgd:
        out += _matrix_verdicts("sgd")
    out += [_eigen_h5(), _eigen_h5_ema()]
    out += [_eigen_h6(eta) for eta in ODE_ETAS]
    out += [_eigen_h7(eta) for eta in ODE_ETAS]
    return out
