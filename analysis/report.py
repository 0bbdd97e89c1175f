"""`ssldyn analyze RUN`: the predictor panels, collapse curves, verdicts and a markdown report of one run.

Writes into RUN: predictor.png + predictor_spectra.csv + predictor_summary.csv (thesis Fig. 4.8),
collapse.png + collapse.csv (Fig. 4.7), analysis.md; returns the key numbers as one dict.
"""
from pathlib import Path

import numpy as np

from analysis import plots
from analysis import verdicts as v
from analysis.deep_hypotheses import deep_predictor_verdicts, run_collapse
from analysis.rundir import load_run
from analysis.theory import deep_to_linear
from analysis.trajectory import SIGNAL_FRACTION, snapshot_trajectory

TOP = 5  # eigenvalues listed in the report


def _leading(traj, row: int) -> dict:
    """How many directions of F carry signal at snapshot `row` (s_j ≥ SIGNAL_FRACTION · s_1, H4's), and
    their unweighted mean alignment (`trajectory.signal_alignment`)."""
    values = traj.F_eigenvalues[row]
    count = int((values >= SIGNAL_FRACTION * values.max()).sum()) if values.max() > 0 else 0
    return {"count": count, "mean_alignment": float(traj.signal_alignment[row])}


def analyze_run(run_dir, sigma2: float = 0.0) -> dict:
    """Read RUN (snapshots required), write its figures, CSVs and analysis.md, return the summary."""
    run = load_run(Path(run_dir))
    if not len(run.epochs["epoch"]):
        raise ValueError(f"{run.path / 'metrics.jsonl'}: no per-epoch lines ({{\"kind\": \"epoch\"}}); "
                         f"analyze needs at least one completed epoch")
    traj = snapshot_trajectory(run.snapshots)
    title = f"{run.name}: {run.config.get('method', '?')}, predictor {run.predictor}"
    files = plots.predictor_panels(traj, run.path, title) + plots.collapse_curves(run.epochs, run.path, title)
    verdicts = deep_predictor_verdicts(run, traj)
    collapse = run_collapse(run)
    knn = run.epochs["knn_top1"]
    best = int(np.nanargmax(knn)) if np.isfinite(knn).any() else None
    summary = {
        "run": str(run.path),
        "method": run.config.get("method"),
        "predictor": run.predictor,
        "dim": int(traj.F_eigenvalues.shape[1]),
        "snapshots": len(traj),
        "steps": [int(traj.step[0]), int(traj.step[-1])],
        "asymmetry": [float(traj.asymmetry[0]), float(traj.asymmetry[-1])],
        "mean_alignment": [float(traj.mean_alignment[0]), float(traj.mean_alignment[-1])],
        "relative_commutator": [float(traj.relative_commutator[0]), float(traj.relative_commutator[-1])],
        "leading_directions": [_leading(traj, 0), _leading(traj, -1)],
        "F_top_eigenvalues": [traj.F_eigenvalues[0, :TOP].tolist(), traj.F_eigenvalues[-1, :TOP].tolist()],
        "W_p_top_eigenvalues": [traj.W_p_eigenvalues[0, :TOP].tolist(), traj.W_p_eigenvalues[-1, :TOP].tolist()],
        "collapse": {**collapse, "loss_last": float(run.epochs["loss"][-1]),
                     "knn_top1_best": None if best is None else float(knn[best]),
                     "knn_best_epoch": None if best is None else int(run.epochs["epoch"][best])},
        "verdicts": {x.hypothesis: x.as_dict() for x in verdicts},
        "theory": _theory(run.config, sigma2),
        "files": [str(f) for f in files] + [str(run.path / "analysis.md")],
    }
    (run.path / "analysis.md").write_text(render_markdown(summary))
    return summary


def _theory(config: dict, sigma2: float) -> dict:
    """The run's hyperparameters on the linear theory (theory.deep_to_linear), or why they cannot be mapped."""
    try:
        return deep_to_linear(config, sigma2).as_dict()
    except ValueError as err:
        return {"unavailable": str(err)}


def _fmt(values) -> str:
    return ", ".join(f"{x:.3g}" for x in values)


def render_markdown(s: dict) -> str:
    """analysis.md: the numbers of `analyze_run`'s summary and the verdicts, in a page."""
    c, lead = s["collapse"], s["leading_directions"]
    lines = [
        f"# Analysis of `{s['run']}`",
        "",
        f"{s['method']} with a `{s['predictor']}` predictor; W_p and F are {s['dim']}×{s['dim']}; "
        f"{s['snapshots']} snapshots from step {s['steps'][0]} to {s['steps'][1]}. "
        "Written by `ssldyn analyze`.",
        "",
        "## Predictor (thesis Fig. 4.8)",
        "",
        "![predictor panels](predictor.png)",
        "",
        f"| quantity | step {s['steps'][0]} | step {s['steps'][1]} |",
        "|---|---|---|",
        f"| asymmetry ‖W_p−W_pᵀ‖/‖W_p‖ | {s['asymmetry'][0]:.3g} | {s['asymmetry'][1]:.3g} |",
        f"| mean alignment (F-weighted) | {s['mean_alignment'][0]:.3g} | {s['mean_alignment'][1]:.3g} |",
        f"| relative commutator ‖[F,W_p]‖/(‖F‖‖W_p‖) | {s['relative_commutator'][0]:.3g} | {s['relative_commutator'][1]:.3g} |",
        f"| directions with s_j ≥ 1% of s_1 (their mean alignment) | {lead[0]['count']} ({lead[0]['mean_alignment']:.3g}) "
        f"| {lead[1]['count']} ({lead[1]['mean_alignment']:.3g}) |",
        f"| top eigenvalues of F | {_fmt(s['F_top_eigenvalues'][0])} | {_fmt(s['F_top_eigenvalues'][1])} |",
        f"| top eigenvalues of W_p | {_fmt(s['W_p_top_eigenvalues'][0])} | {_fmt(s['W_p_top_eigenvalues'][1])} |",
        "",
        "## Collapse curves (thesis Fig. 4.7)",
        "",
        "![collapse curves](collapse.png)",
        "",
        f"After epoch {c['epochs']}: loss {c['loss_last']:.4g}, std of ℓ2-normalised outputs × √d "
        f"{c['std_last']:.3g}, effective rank {c['effective_rank_last']:.3g}, kNN top-1 {c['knn_top1_last']:.3g}%"
        + (f" (best {c['knn_top1_best']:.3g}% at epoch {c['knn_best_epoch']})" if c["knn_top1_best"] is not None else "")
        + f". Collapse status: **{c['status']}** (collapsed if std < {v.COLLAPSED_STD:g} "
        f"or effective rank < {v.COLLAPSED_RANK:g}).",
        "",
        "## Verdicts",
        "",
        "| hypothesis | prediction | observation | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {h} | {x['prediction']} | {x['observation']} | **{x['outcome']}** |" for h, x in s["verdicts"].items()]
    lines += ["", f"Rules: {v.RULES['H3']} {v.RULES['H4']}", ""]
    t = s["theory"]
    lines += ["## The linear theory for this run's hyperparameters", ""]
    if "unavailable" in t:
        lines.append(f"Not mapped: {t['unavailable']}")
    else:
        beta = "none (SimSiam, τ ≡ 1)" if t["beta"] is None else f"{t['beta']:.3g} per unit flow time"
        lines.append(
            f"η = weight_decay = {t['eta']:g}, α_p = {t['alpha_p']}, EMA rate β = {beta}, σ² = {t['sigma2']:g}: "
            f"η* = {t['eta_star']:.3g} at τ = 1, regime **{t['regime']}**, so the theory predicts **{t['predicted']}**. "
            "The mapping (flow time = lr/(1−momentum) per step) is qualitative: the deep loss is a cosine of "
            "normalised outputs and σ² has no measured counterpart (analysis/theory.py).")
    return "\n".join(lines) + "\n"
