"""H1–H7 (SPEC §5) on the linear model: matrix flow, minibatch SGD and the eigenvalue ODE.

Each check returns `Verdict`s (analysis.verdicts): the theory's prediction, what was observed with
the numbers behind it, and holds / fails / inconclusive by the rule written beside the check.
The linear side is small (n1 = 16, n2 = 8; a 900-mode grid for the ODE) so that it runs in seconds.
"""
from dataclasses import replace

import numpy as np

from analysis import verdicts as v
from analysis.theory import COLLAPSE, default_horizon, predict
from analysis.trajectory import predictor_trajectory
from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.fixed_points import collapses_closed_form, eta_critical, p_roots
from linear_dynamics.matrix_model import simulate_flow
from linear_dynamics.params import EigenParams, LinearConfig

# Matrix model: linear_dynamics' defaults (η = 0.02 < η* = 1/6 at σ² = 0.5, every mode of F above
# the parabola) over 30 time units, long enough for every collapse here to pass ‖W‖ ≤ 1e-2 ‖W(0)‖.
BASE = LinearConfig(t_end=30.0)
SGD_LR, SGD_BATCH = 0.1, 128   # 300 SGD steps; the flow's verdicts are reproduced at this step size
N_SAVE = 31

# Eigenvalue ODE (H5–H7): a grid of initial modes, p0 in (0, 1], s0 log-spaced over [1e-4, 1], and
# a reference mode for speeds. SimSiam's τ ≡ 1 unless an EMA rate β is given.
GRID_P0, GRID_S0 = (grid.ravel() for grid in np.meshgrid(np.linspace(1 / 30, 1, 30), np.geomspace(1e-4, 1, 30)))
REFERENCE_MODE = (0.1, 0.1)
ODE_SIGMA2 = BASE.sigma2
FRACTION_TOL = 0.01   # collapsed fractions closer than 1% of the grid count as equal
ALPHAS = (0.3, 1.0, 3.0)
BETAS = (None, 1.0, 0.1)  # None: SimSiam (no EMA); then weaker to stronger EMA
ODE_ETAS = (0.0, 0.05)
SPEED_T_END, SPEED_N_SAVE = 200.0, 401


def _simulate(config: LinearConfig, method: str):
    if method == "flow":
        return simulate_flow(config, n_save=N_SAVE)
    from linear_dynamics.sgd import simulate_sgd  # torch, imported only when SGD is asked for
    return simulate_sgd(config, batch=SGD_BATCH, lr=SGD_LR, n_save=N_SAVE)


def _norms(run) -> dict:
    return {"W_norm_first": float(run.W_norm[0]), "W_norm_last": float(run.W_norm[-1]), "verdict": run.verdict}


def _collapse_check(hypothesis, setting, prediction, run, control) -> v.Verdict:
    """H1, H2: holds if ‖W(t_end)‖ ≤ 1e-2‖W(0)‖ (linear_dynamics' collapse rule), else fails."""
    evidence = {"variant": _norms(run), "with_predictor_and_stopgrad": _norms(control)}
    observation = (f"‖W‖ {run.W_norm[0]:.3g} → {run.W_norm[-1]:.3g} at t = {run.t[-1]:g} ({run.verdict}); "
                   f"control with predictor and stop-gradient: {control.W_norm[0]:.3g} → {control.W_norm[-1]:.3g}")
    return v.Verdict(hypothesis, setting, prediction, observation, v.HOLDS if run.collapsed else v.FAILS, evidence)


def _matrix_verdicts(method: str) -> list:
    setting = f"linear {method}"
    base = _simulate(BASE, method)
    no_predictor = _simulate(replace(BASE, predictor=False), method)
    no_stopgrad = _simulate(replace(BASE, stop_grad=False), method)
    eta_star = eta_critical(1.0, BASE.sigma2)
    large_decay = _simulate(replace(BASE, eta=2 * eta_star), method)
    out = [
        _collapse_check("H1", setting, "without a predictor (W_p ≡ I) ‖W‖ → 0", no_predictor, base),
        _collapse_check("H2", setting, "without stop-gradient ‖W‖ → 0 (Thm 2: H ⪰ 0)", no_stopgrad, base),
    ]
    # H3, H4: the control run's predictor, measured like a deep run's snapshots.
    traj = predictor_trajectory(base.W_p, base.F, steps=base.t)
    outcome, evidence = v.symmetry_outcome(traj.asymmetry)
    out.append(v.Verdict("H3", setting, f"W_p becomes symmetric: asymmetry → 0 (η = {BASE.eta:g})",
                         f"asymmetry {evidence['asymmetry_first']:.3g} → {evidence['asymmetry_last']:.3g} "
                         f"from t = 0 to {base.t[-1]:g}", outcome, evidence))
    outcome, evidence = v.alignment_outcome(traj.mean_alignment)
    evidence.update(commutator_first=float(traj.relative_commutator[0]),
                    commutator_last=float(traj.relative_commutator[-1]))
    out.append(v.Verdict("H4", setting, "eigenspaces of W_p and F align: mean alignment → 1, ‖[F,W_p]‖ → 0 (Thm 3)",
                         f"mean alignment {evidence['mean_alignment_first']:.3g} → {evidence['mean_alignment_last']:.3g}; "
                         f"relative commutator {evidence['commutator_first']:.3g} → {evidence['commutator_last']:.3g}",
                         outcome, evidence))
    # H5: holds if the run below η* keeps ‖W‖ and the run above η* collapses; fails otherwise.
    matches = (not base.collapsed) and large_decay.collapsed
    out.append(v.Verdict(
        "H5", setting, f"η = {BASE.eta:g} < η* = {eta_star:.3g}: no collapse; η = {2 * eta_star:.3g} > η*: collapse",
        f"η = {BASE.eta:g}: ‖W‖ {base.W_norm[0]:.3g} → {base.W_norm[-1]:.3g} ({base.verdict}); "
        f"η = {2 * eta_star:.3g}: {large_decay.W_norm[0]:.3g} → {large_decay.W_norm[-1]:.3g} ({large_decay.verdict})",
        v.HOLDS if matches else v.FAILS,
        {"eta_star": eta_star, "below": _norms(base), "above": _norms(large_decay)}))
    return out


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


def _eigen_h5() -> v.Verdict:
    """H5 on the ODE: modes on the parabola s = p² (α_p = 1) with p0 > p₋, at η = η*/2 and 2η*.
    holds if the fixed-point analysis (closed form: survive iff p0 > p₋; certain collapse above η*)
    and the integration agree on every mode; fails otherwise."""
    eta_star = eta_critical(1.0, ODE_SIGMA2)
    below, above = eta_star / 2, 2 * eta_star
    p_minus = p_roots(below, 1.0, ODE_SIGMA2)[0]
    p0 = np.linspace(p_minus * 1.5, 1.0, 20)
    s0 = p0**2
    predicted_below = collapses_closed_form(p0, s0, 1.0, below, ODE_SIGMA2, 1.0)
    observed_below = predict(1.0, below, ODE_SIGMA2, tau=1.0, p0=p0, s0=s0)
    observed_above = predict(1.0, above, ODE_SIGMA2, tau=1.0, p0=p0, s0=s0)
    n_below = sum(x == COLLAPSE for x in observed_below.verdicts)
    n_above = sum(x == COLLAPSE for x in observed_above.verdicts)
    agree = (n_below == int(predicted_below.sum()) == 0) and n_above == len(p0)
    return v.Verdict(
        "H5", "eigenvalue ODE",
        f"on s = p², p0 ∈ [{p0[0]:.3g}, 1] > p₋ = {p_minus:.3g}: no mode collapses at η = {below:.3g} "
        f"(η*/2); every mode collapses at η = {above:.3g} (2η*)",
        f"collapsed modes: {n_below}/{len(p0)} at η*/2, {n_above}/{len(p0)} at 2η* "
        f"(integrated to t = {observed_below.t_end:g} and {observed_above.t_end:g})",
        v.HOLDS if agree else v.FAILS,
        {"eta_star": eta_star, "p_minus": p_minus, "collapsed_below": n_below, "collapsed_above": n_above,
         "modes": len(p0)})


def _monotone(values, tol=0.0) -> tuple[bool, bool]:
    """(never increases by more than tol, decreases by more than tol overall)."""
    values = list(values)
    steady = all(b <= a + tol for a, b in zip(values, values[1:]))
    return steady, values[-1] < values[0] - tol


def _eigen_h6(eta: float) -> v.Verdict:
    """H6 on the ODE at weight decay η, α_p over ALPHAS. Basin: fraction of the grid whose fate is
    collapse (integrate_eigen's verdicts). Speed: the reference mode's s growth s(T)/s(0).
    holds if the fraction never rises by > FRACTION_TOL and falls by > FRACTION_TOL overall, and
    the s growth falls strictly with α_p; fails if the fraction rises or the growth does not fall;
    inconclusive otherwise (fractions equal within tolerance)."""
    params = [EigenParams(a, eta, ODE_SIGMA2, tau=1.0) for a in ALPHAS]
    fractions = [_fraction_collapsed(p) for p in params]
    growth = [float(s[-1] / s[0]) for _, s in map(_reference_curve, params)]
    steady, shrinks = _monotone(fractions, FRACTION_TOL)
    slower = all(b < a for a, b in zip(growth, growth[1:]))
    outcome = v.FAILS if not (steady and slower) else (v.HOLDS if shrinks else v.INCONCLUSIVE)
    return v.Verdict(
        "H6", f"eigenvalue ODE, η = {eta:g}",
        "larger α_p: smaller collapsed fraction of the grid, and less growth of s (too large α_p stalls s)",
        "α_p " + ", ".join(f"{a:g}: {f:.1%} collapsed, s ×{g:.3g}" for a, f, g in zip(ALPHAS, fractions, growth)),
        outcome, {"alpha_p": list(ALPHAS), "collapsed_fraction": fractions, "s_growth": growth,
                  "grid_modes": int(GRID_P0.size), "reference_mode": list(REFERENCE_MODE)})


def _eigen_h7(eta: float) -> v.Verdict:
    """H7 on the ODE at weight decay η: no EMA (τ ≡ 1), then β over BETAS (stronger EMA = smaller β,
    τ from 1 by Eq. 13). Speed: time for the reference mode's s to cover 90% of its change.
    Region: fraction of the grid that collapses. holds if that time grows strictly as the EMA
    strengthens and the fraction never rises by > FRACTION_TOL; fails if either is violated."""
    params = [EigenParams(1.0, eta, ODE_SIGMA2, tau=1.0) if b is None else EigenParams(1.0, eta, ODE_SIGMA2, beta=b)
              for b in BETAS]
    fractions = [_fraction_collapsed(p) for p in params]
    times = [_time_to_90_percent(*_reference_curve(p)) for p in params]
    steady, _ = _monotone(fractions, FRACTION_TOL)
    slower = all(b > a for a, b in zip(times, times[1:]))
    labels = ["no EMA" if b is None else f"β = {b:g}" for b in BETAS]
    return v.Verdict(
        "H7", f"eigenvalue ODE, η = {eta:g}",
        "stronger EMA (smaller β) trains slower and does not enlarge the collapsed region",
        "; ".join(f"{label}: s reaches 90% at t = {t:.3g}, {f:.1%} collapsed"
                  for label, t, f in zip(labels, times, fractions)),
        v.HOLDS if (steady and slower) else v.FAILS,
        {"beta": [b for b in BETAS], "time_to_90_percent": times, "collapsed_fraction": fractions,
         "grid_modes": int(GRID_P0.size)})


def linear_verdicts(sgd: bool = True) -> list:
    """Every linear-model check: matrix flow (and SGD) for H1–H5, the eigenvalue ODE for H5–H7."""
    out = _matrix_verdicts("flow")
    if sgd:
        out += _matrix_verdicts("sgd")
    out.append(_eigen_h5())
    out += [_eigen_h6(eta) for eta in ODE_ETAS]
    out += [_eigen_h7(eta) for eta in ODE_ETAS]
    return out
