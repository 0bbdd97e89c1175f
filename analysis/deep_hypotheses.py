"""H1, H3–H7 (SPEC §5) on deep runs, matched to each hypothesis by their config.

Each check returns `Verdict`s (analysis.verdicts): the theory's prediction, what was observed with
the numbers behind it, and holds / fails / inconclusive by the rule written beside the check.
"""
import math

import numpy as np

from analysis import verdicts as v
from analysis.rundir import SNAPSHOT_PREDICTORS, Run, read_snapshots
from analysis.theory import COLLAPSE, NO_COLLAPSE, PREDICTOR_DECAY_UNITS, UNMEASURED_SCALES, deep_to_linear
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
    """H5 over the runs with a predictor, mapped by theory.deep_to_linear (η = weight_decay, τ = 1):
    each run's collapse status beside "collapse iff η > η*", and whether any contradicts it. Always
    inconclusive: that mapping compares different units (theory.UNMEASURED_SCALES), so agreement and
    contradiction are reported, not judged; the observation says which it would have been."""
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
    observation = "; ".join(f"{r['run']}: wd {r['weight_decay']:g}, predicted {r['predicted']}, observed "
                            f"{r['status']} (std {r['std_last']:.3g})" for r in rows)
    if contradicted:
        reading = "a run contradicts it"
    elif sides == {COLLAPSE, NO_COLLAPSE}:
        reading = "no run contradicts it"
    else:
        reading = f"every run is on one side of η* = {eta_star:.3g}"
    observation += f" — read as η = weight_decay, {reading}; not judged: unmeasured are {UNMEASURED_SCALES}"
    return [v.Verdict("H5", "deep runs", f"collapse iff weight_decay > η* = {eta_star:.3g} (τ = 1, σ² = {sigma2:g})",
                      observation, v.INCONCLUSIVE, {"eta_star": eta_star, "sigma2": sigma2, "runs": rows,
                                                    "contradicted": contradicted, "missing_scales": UNMEASURED_SCALES})]


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


def _by_value(group, knob) -> dict:
    """{knob value: [runs]} in increasing order of the value: the seeds of one setting together."""
    values = {}
    for run in group:
        values.setdefault(run.config[knob], []).append(run)
    return dict(sorted(values.items()))


def _collapsed_fractions(group, knob) -> dict:
    """{knob value: fraction of its runs (seeds) that collapsed}, over runs whose status is known."""
    fractions = {}
    for value, runs in _by_value(group, knob).items():
        statuses = [run_collapse(r)["status"] for r in runs]
        known = [s for s in statuses if s != v.UNKNOWN]
        fractions[value] = sum(s == v.COLLAPSED for s in known) / len(known) if known else math.nan
    return fractions


def _collapse_monotone(group, knob) -> tuple[bool, bool]:
    """(the fraction of seeds that collapsed never rises with the knob, some runs collapsed and some
    did not). For α_p (H6) and ema (H7) alike, the theory says a larger value never adds collapse;
    with one seed per value this is "no run collapsed where one with a smaller value did not"."""
    fractions = [f for f in _collapsed_fractions(group, knob).values() if math.isfinite(f)]
    ordered = all(b <= a for a, b in zip(fractions, fractions[1:]))
    return ordered, any(f > 0 for f in fractions) and any(f < 1 for f in fractions)


def _collapse_cell(runs) -> str:
    if len(runs) == 1:
        return _collapse_text(run_collapse(runs[0]))
    collapsed = sum(run_collapse(r)["status"] == v.COLLAPSED for r in runs)
    return f"{collapsed} of {len(runs)} seeds collapsed"


def deep_h6(runs) -> list:
    """H6 per group of runs differing in predictor_lr_mult (α_p); several seeds per value are pooled.
    Basin part: the fraction of seeds that collapse never rises with α_p. fails if it rises; holds
    if some runs collapse and some do not and the order holds; inconclusive if all share one status; and
    inconclusive, its rule's reading kept, when the runs have weight decay (`PREDICTOR_DECAY_UNITS`).
    The slowing part has no threshold the theory fixes for a ResNet: kNN per α_p is reported, not judged."""
    out = []
    for group in knob_groups(runs, "predictor_lr_mult"):
        ordered, informative = _collapse_monotone(group, "predictor_lr_mult")
        outcome = v.FAILS if not ordered else (v.HOLDS if informative else v.INCONCLUSIVE)
        by_value = _by_value(group, "predictor_lr_mult")
        rows = [{"run": r.name, "alpha_p": r.config["predictor_lr_mult"], "seed": r.config.get("seed"),
                 **run_collapse(r)} for r in group]
        out.append(v.Verdict(
            "H6", "deep runs", "larger α_p shrinks the collapse basin (no more seeds collapse than at a smaller α_p)",
            "; ".join(f"α_p {a:g}: {_collapse_cell(rs)}, kNN {_mean_knn(rs)}" for a, rs in by_value.items()),
            outcome, {"runs": rows, "collapsed_fraction": _collapsed_fractions(group, "predictor_lr_mult")}))
        if group[0].config.get("weight_decay", 0.0) > 0:  # without decay the network's line is the ODE's
            out[-1] = v.not_in_units(out[-1], PREDICTOR_DECAY_UNITS)
    return out


def _mean_knn(runs) -> str:
    knn = [run_collapse(r)["knn_top1_last"] for r in runs]
    return f"{np.mean(knn):.3g}%" if len(knn) == 1 else f"{np.mean(knn):.3g} ± {np.std(knn, ddof=1):.2g}%"


def _knn_at(run: Run, epoch: int) -> float:
    hits = np.flatnonzero(run.epochs["epoch"] == epoch)
    return float(run.epochs["knn_top1"][hits[-1]]) if hits.size else math.nan


def _apart(a: list, b: list) -> float:
    """The least difference of means that counts between two sets of seeds: KNN_TOL points, or twice
    the standard error of the difference when the seeds spread more."""
    se = math.sqrt(sum(np.var(x, ddof=1) / len(x) for x in (a, b) if len(x) > 1))
    return max(KNN_TOL, 2 * se)


def deep_h7(runs) -> list:
    """H7 per group of runs differing in ema (m; larger m = stronger EMA); seeds per value are pooled.
    Speed: mean kNN top-1 at epoch ⌈E/4⌉ (E = fewest epochs in the group). A difference of means
    counts when it exceeds `_apart` (KNN_TOL points, or 2 standard errors with several seeds).
    fails if a stronger EMA is ahead there, or the fraction of collapsed seeds rises with the EMA;
    holds if the strongest EMA is behind the weakest and nothing is violated; inconclusive otherwise."""
    out = []
    for group in knob_groups(runs, "ema"):
        epochs = min(int(r.epochs["epoch"][-1]) for r in group)
        early = max(1, math.ceil(epochs / 4))
        by_value = _by_value(group, "ema")
        knn = [[_knn_at(r, early) for r in rs] for rs in by_value.values()]
        means = [float(np.mean(k)) for k in knn]
        ordered, _ = _collapse_monotone(group, "ema")
        ahead = any(means[j] > means[i] + _apart(knn[i], knn[j])
                    for i in range(len(means)) for j in range(i + 1, len(means)))
        behind = means[-1] < means[0] - _apart(knn[0], knn[-1])
        outcome = v.FAILS if (ahead or not ordered) else (v.HOLDS if behind else v.INCONCLUSIVE)
        rows = [{"run": r.name, "ema": r.config["ema"], "seed": r.config.get("seed"),
                 f"knn_top1_epoch_{early}": _knn_at(r, early), **run_collapse(r)} for r in group]
        out.append(v.Verdict(
            "H7", "deep runs", f"stronger EMA: lower kNN at epoch {early} (slower), no collapse where a weaker EMA had none",
            "; ".join(f"ema {m:g}: kNN {mean:.3g}%" + (f" ± {np.std(k, ddof=1):.2g} ({len(k)} seeds)" if len(k) > 1 else "")
                      + f" at epoch {early}, {_collapse_cell(rs)}"
                      for (m, rs), k, mean in zip(by_value.items(), knn, means)),
            outcome, {"early_epoch": early, "runs": rows, "mean_knn": dict(zip(by_value, means))}))
    return out


def deep_verdicts(runs, sigma2: float = 0.0) -> list:
    """Every deep check a set of runs allows (a hypothesis no run matches yields no verdict)."""
    out = deep_h1(runs)
    for run in runs:
        if run.predictor in SNAPSHOT_PREDICTORS and (run.path / "snapshots").is_dir():
            out += deep_predictor_verdicts(run)
    return out + deep_h5(runs, sigma2) + deep_h6(runs) + deep_h7(runs)
