"""H1, H3–H7 (SPEC §5) on deep runs, matched to each hypothesis by their config.

Each check returns `Verdict`s (analysis.verdicts): the theory's prediction, what was observed with
the numbers behind it, and holds / fails / inconclusive by the rule written beside the check.
"""
import math

import numpy as np

from analysis import verdicts as v
from analysis.rundir import SNAPSHOT_PREDICTORS, Run, read_snapshots
from analysis.theory import COLLAPSE, NO_COLLAPSE, deep_to_linear
from analysis.trajectory import snapshot_trajectory
from linear_dynamics.fixed_points import eta_critical

KNN_TOL = 1.0  # percentage points of kNN top-1 that count as noise between deep runs
# Config keys that do not change the dynamics: runs differing only in these (and the knob) are compared.
BOOKKEEPING_KEYS = {"seed", "device", "data_root", "preset", "log_every", "snapshots", "compile",
                    "channels_last", "precision", "eval_batch", "knn_k", "knn_temperature"}


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
    judged by verdicts.symmetry_outcome (asymmetry) and verdicts.alignment_outcome (alignment of F's
    signal directions and the relative commutator, both required); `directpred` / `directcopy` build
    W_p from F̂ (symmetric, aligned by construction), so their numbers are shown but inconclusive."""
    if traj is None:
        traj = snapshot_trajectory(read_snapshots(run.path, run.predictor))
    by_construction = run.predictor in ("directpred", "directcopy")
    note = f" — {run.predictor} sets W_p from F̂, symmetric and aligned by construction" if by_construction else ""
    out = []
    outcome, evidence = v.symmetry_outcome(traj.asymmetry)
    out.append(v.Verdict(
        "H3", f"deep: {run.name}", "W_p becomes symmetric: asymmetry → 0 (by 10×, to ≤ 0.2)",
        f"asymmetry {evidence['asymmetry_first']:.3g} (step {traj.step[0]}) → {evidence['asymmetry_last']:.3g} "
        f"(step {traj.step[-1]}), {len(traj)} snapshots{note}",
        v.INCONCLUSIVE if by_construction else outcome, evidence))
    outcome, evidence = v.alignment_outcome(traj.signal_alignment, traj.relative_commutator)
    out.append(v.Verdict(
        "H4", f"deep: {run.name}", "eigenspaces of W_p and F align: signal directions aligned and ‖[F,W_p]‖ → 0",
        f"alignment of the directions with s_j ≥ 1% of s_1 {evidence['signal_alignment_first']:.3g} → "
        f"{evidence['signal_alignment_last']:.3g}; relative commutator {evidence['commutator_first']:.3g} → "
        f"{evidence['commutator_last']:.3g}{note}",
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
