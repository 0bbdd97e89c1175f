"""H1–H7 of SPEC §5 on the linear model (matrix flow, SGD, eigenvalue ODE) and on deep runs.

Each check returns `Verdict`s (analysis.verdicts): the theory's prediction, what was observed with
the numbers behind it, and holds / fails / inconclusive by the rule written beside the check.
The linear side is small (n1 = 16, n2 = 8; a 900-mode grid for the ODE) so that it runs in seconds.
"""
import math
from dataclasses import replace

import numpy as np

from analysis import verdicts as v
from analysis.rundir import SNAPSHOT_PREDICTORS, Run, read_snapshots
from analysis.theory import COLLAPSE, NO_COLLAPSE, deep_to_linear, default_horizon, predict
from analysis.trajectory import predictor_trajectory, snapshot_trajectory
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

KNN_TOL = 1.0  # percentage points of kNN top-1 that count as noise between deep runs
# Config keys that do not change the dynamics: runs differing only in these (and the knob) are compared.
BOOKKEEPING_KEYS = {"seed", "device", "data_root", "preset", "log_every", "snapshots", "compile",
                    "channels_last", "precision", "eval_batch", "knn_k", "knn_temperature"}


# --------------------------------------------------------------------------- linear model

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


# --------------------------------------------------------------------------- deep runs

def run_collapse(run: Run) -> dict:
    """Collapse status of a run at its last logged epoch (verdicts.collapse_status)."""
    std = v.last_finite(run.epochs["std"])
    rank = v.last_finite(run.epochs["effective_rank"])
    return {"status": v.collapse_status(std, rank), "std_last": std, "effective_rank_last": rank,
            "knn_top1_last": v.last_finite(run.epochs["knn_top1"]),
            "epochs": int(run.epochs["epoch"][-1]) if len(run.epochs["epoch"]) else 0}


def _collapse_text(c: dict) -> str:
    return f"{c['status']} (std {c['std_last']:.3g}, rank {c['effective_rank_last']:.3g}, epoch {c['epochs']})"


def _has_predictor(run: Run) -> bool:
    return run.config.get("predictor", "none") != "none"


def deep_h1(runs) -> list:
    """H1 per run without a predictor: holds if collapsed, fails if not, inconclusive if unknown."""
    out = []
    for run in runs:
        if run.config.get("predictor") != "none":
            continue
        c = run_collapse(run)
        outcome = {v.COLLAPSED: v.HOLDS, v.NOT_COLLAPSED: v.FAILS}.get(c["status"], v.INCONCLUSIVE)
        out.append(v.Verdict("H1", f"deep: {run.name}", "no predictor ⇒ collapse (std → 0)",
                             _collapse_text(c), outcome, c))
    return out


def deep_predictor_verdicts(run: Run, traj=None) -> list:
    """H3 and H4 of one run with a one-matrix predictor. A gradient-trained `linear` predictor is
    judged by verdicts.symmetry_outcome / alignment_outcome; `directpred` / `directcopy` build W_p
    from F̂ (symmetric, aligned by construction), so their numbers are shown but inconclusive."""
    if traj is None:
        traj = snapshot_trajectory(read_snapshots(run.path, run.predictor))
    by_construction = run.predictor in ("directpred", "directcopy")
    note = f" — {run.predictor} sets W_p from F̂, symmetric and aligned by construction" if by_construction else ""
    out = []
    outcome, evidence = v.symmetry_outcome(traj.asymmetry)
    out.append(v.Verdict(
        "H3", f"deep: {run.name}", "W_p becomes symmetric: asymmetry → 0",
        f"asymmetry {evidence['asymmetry_first']:.3g} (step {traj.step[0]}) → {evidence['asymmetry_last']:.3g} "
        f"(step {traj.step[-1]}), {len(traj)} snapshots{note}",
        v.INCONCLUSIVE if by_construction else outcome, evidence))
    outcome, evidence = v.alignment_outcome(traj.mean_alignment)
    evidence.update(commutator_first=float(traj.relative_commutator[0]),
                    commutator_last=float(traj.relative_commutator[-1]))
    out.append(v.Verdict(
        "H4", f"deep: {run.name}", "eigenspaces of W_p and F align: mean alignment → 1",
        f"F-weighted mean alignment {evidence['mean_alignment_first']:.3g} → {evidence['mean_alignment_last']:.3g}; "
        f"relative commutator {evidence['commutator_first']:.3g} → {evidence['commutator_last']:.3g}{note}",
        v.INCONCLUSIVE if by_construction else outcome, evidence))
    return out


def deep_h5(runs, sigma2: float) -> list:
    """H5 over the runs with a predictor, mapped by theory.deep_to_linear (η = weight_decay, τ = 1).
    fails if a run's collapse status contradicts "collapse iff η > η*"; holds if none does and the
    runs cover both sides of η*; inconclusive if all sit on one side (the other side is untested)."""
    runs = [r for r in runs if _has_predictor(r)]
    if not runs:
        return []
    rows, sides, contradicted = [], set(), False
    for run in runs:
        mapping = deep_to_linear(run.config, sigma2)
        c = run_collapse(run)
        sides.add(mapping.predicted)
        if c["status"] != v.UNKNOWN:
            contradicted |= (c["status"] == v.COLLAPSED) != (mapping.predicted == COLLAPSE)
        rows.append({"run": run.name, "weight_decay": mapping.eta, "predicted": mapping.predicted, **c})
    eta_star = eta_critical(1.0, sigma2)
    if contradicted:
        outcome = v.FAILS
    else:
        outcome = v.HOLDS if sides == {COLLAPSE, NO_COLLAPSE} else v.INCONCLUSIVE
    observation = "; ".join(f"{r['run']}: wd {r['weight_decay']:g}, predicted {r['predicted']}, observed "
                            f"{r['status']} (std {r['std_last']:.3g})" for r in rows)
    if outcome == v.INCONCLUSIVE:
        observation += f" — every run is on one side of η* = {eta_star:.3g}"
    return [v.Verdict("H5", "deep runs", f"collapse iff weight_decay > η* = {eta_star:.3g} (τ = 1, σ² = {sigma2:g})",
                      observation, outcome, {"eta_star": eta_star, "sigma2": sigma2, "runs": rows})]


def knob_groups(runs, knob: str) -> list:
    """Runs with a predictor and at least one completed epoch that agree on every config key except
    `knob` and BOOKKEEPING_KEYS, in groups with at least two values of the knob, sorted by the knob."""
    groups = {}
    for run in runs:
        if not _has_predictor(run) or knob not in run.config or not len(run.epochs["epoch"]):
            continue
        key = tuple(sorted((k, repr(val)) for k, val in run.config.items() if k != knob and k not in BOOKKEEPING_KEYS))
        groups.setdefault(key, []).append(run)
    return [sorted(g, key=lambda r: r.config[knob]) for g in groups.values()
            if len({r.config[knob] for r in g}) >= 2]


def _collapse_monotone(group, knob) -> tuple[bool, bool]:
    """(no run collapsed while a run with a smaller knob value did not, both statuses present).
    For α_p (H6) and ema (H7) alike, the theory says a larger value never adds collapse."""
    statuses = [run_collapse(r)["status"] for r in group]
    values = [r.config[knob] for r in group]
    violated = any(statuses[j] == v.COLLAPSED and statuses[i] == v.NOT_COLLAPSED and values[i] < values[j]
                   for i in range(len(group)) for j in range(len(group)))
    return not violated, {v.COLLAPSED, v.NOT_COLLAPSED} <= set(statuses)


def deep_h6(runs) -> list:
    """H6 per group of runs differing in predictor_lr_mult (α_p). Basin part: a larger α_p never
    collapses where a smaller one did not. fails if violated; holds if runs on both sides of collapse
    order as predicted; inconclusive if all runs share one status. The slowing part has no threshold
    the theory fixes for a ResNet: kNN and rank per α_p are reported, not judged."""
    out = []
    for group in knob_groups(runs, "predictor_lr_mult"):
        ordered, informative = _collapse_monotone(group, "predictor_lr_mult")
        outcome = v.FAILS if not ordered else (v.HOLDS if informative else v.INCONCLUSIVE)
        rows = [{"run": r.name, "alpha_p": r.config["predictor_lr_mult"], **run_collapse(r)} for r in group]
        out.append(v.Verdict(
            "H6", "deep runs", "larger α_p shrinks the collapse basin (no collapse where a smaller α_p did not collapse)",
            "; ".join(f"α_p {r['alpha_p']:g}: {_collapse_text(r)}, kNN {r['knn_top1_last']:.3g}%" for r in rows),
            outcome, {"runs": rows}))
    return out


def _knn_at(run: Run, epoch: int) -> float:
    hits = np.flatnonzero(run.epochs["epoch"] == epoch)
    return float(run.epochs["knn_top1"][hits[-1]]) if hits.size else math.nan


def deep_h7(runs) -> list:
    """H7 per group of runs differing in ema (m; larger m = stronger EMA). Speed: kNN top-1 at epoch
    ⌈E/4⌉ (E = fewest epochs in the group). fails if a stronger EMA is ahead there by > KNN_TOL
    points, or collapses where a weaker EMA did not; holds if the strongest EMA is behind the weakest
    by > KNN_TOL and nothing is violated; inconclusive otherwise."""
    out = []
    for group in knob_groups(runs, "ema"):
        epochs = min(int(r.epochs["epoch"][-1]) for r in group)
        early = max(1, math.ceil(epochs / 4))
        knn = [_knn_at(r, early) for r in group]
        ordered, _ = _collapse_monotone(group, "ema")
        ahead = any(knn[j] > knn[i] + KNN_TOL for i in range(len(knn)) for j in range(i + 1, len(knn)))
        behind = knn[-1] < knn[0] - KNN_TOL
        outcome = v.FAILS if (ahead or not ordered) else (v.HOLDS if behind else v.INCONCLUSIVE)
        rows = [{"run": r.name, "ema": r.config["ema"], f"knn_top1_epoch_{early}": k, **run_collapse(r)}
                for r, k in zip(group, knn)]
        out.append(v.Verdict(
            "H7", "deep runs", f"stronger EMA: lower kNN at epoch {early} (slower), no collapse where a weaker EMA had none",
            "; ".join(f"ema {r['ema']:g}: kNN {k:.3g}% at epoch {early}, {_collapse_text(r)}" for r, k in zip(rows, knn)),
            outcome, {"early_epoch": early, "runs": rows}))
    return out


def deep_verdicts(runs, sigma2: float = 0.0) -> list:
    """Every deep check a set of runs allows (a hypothesis no run matches yields no verdict)."""
    out = deep_h1(runs)
    for run in runs:
        if run.predictor in SNAPSHOT_PREDICTORS and (run.path / "snapshots").is_dir():
            out += deep_predictor_verdicts(run)
    return out + deep_h5(runs, sigma2) + deep_h6(runs) + deep_h7(runs)


# --------------------------------------------------------------------------- both

HYPOTHESES = {
    "H1": "no predictor ⇒ collapse",
    "H2": "no stop-gradient ⇒ collapse",
    "H3": "the predictor becomes symmetric",
    "H4": "the eigenspaces of W_p and F align",
    "H5": "weight decay above η* ⇒ collapse",
    "H6": "larger α_p shrinks the collapse basin; too large slows s growth",
    "H7": "EMA slows training but widens the region without collapse",
}


def summarize(linear: list, deep: list) -> dict:
    """Per hypothesis, the combined outcome on each side (verdicts.combine), or 'not tested'."""
    def side(rows, h):
        outcomes = [x.outcome for x in rows if x.hypothesis == h]
        return v.combine(outcomes) if outcomes else "not tested"

    return {h: {"statement": text, "linear": side(linear, h), "deep": side(deep, h)} for h, text in HYPOTHESES.items()}
