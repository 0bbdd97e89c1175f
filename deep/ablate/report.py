"""What a finished sweep reports: the per-epoch CSV and figure (`figures.ablations`), the analysis
layer's verdicts on the ablation's hypotheses, and summary.md.

Every number is read from the run directories by `analysis.rundir.load_run`; collapse status, std and
effective rank come from `analysis.hypotheses.run_collapse`, verdicts from
`analysis.hypotheses.deep_verdicts`, the linear-theory reading of each config from
`analysis.theory.deep_to_linear`. Nothing is recomputed here.
"""
import json
import math
import shlex
from pathlib import Path

import numpy as np

from analysis.deep_hypotheses import deep_verdicts, run_collapse
from analysis.rundir import load_run
from analysis.theory import deep_to_linear
from analysis.verdicts import last_finite
from deep import rundir
from deep.ablate.sweeps import set_text
from figures import ablations as figures


def variant_result(variant, config: dict, run, outcome: dict) -> dict:
    """One row of the summary for `run` (an analysis.rundir.Run): the variant's overrides, kNN (last,
    best and its epoch), collapse status with std and effective rank, time, and what this call did."""
    knn = run.epochs["knn_top1"]
    best = int(np.nanargmax(knn)) if np.isfinite(knn).any() else None
    summary_path = run.path / rundir.SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {
        "variant": variant.name,
        "label": variant.label,
        "method": variant.method,
        "overrides": dict(variant.overrides),
        "run": str(run.path),
        "action": outcome["action"],
        "status": outcome["status"],
        "message": outcome["message"],
        "epochs": int(run.epochs["epoch"][-1]) if len(run.epochs["epoch"]) else 0,
        "knn_top1_last": last_finite(knn),
        "knn_top1_best": None if best is None else float(knn[best]),
        "best_epoch": None if best is None else int(run.epochs["epoch"][best]),
        "collapse": run_collapse(run),
        "seconds": float(np.nansum(run.epochs["seconds"])),
        "img_per_s": summary.get("img_per_s"),
        "device": summary.get("device"),
        "theory": deep_to_linear(config).as_dict(),
    }


def curve_rows(variant, config: dict, run) -> list:
    """The CSV rows (figures.ablations.COLUMNS) of one variant's run: one per logged epoch."""
    epochs = run.epochs
    return [{"variant": variant.name, "label": variant.label, "method": variant.method, "preset": config["preset"],
             "dataset": config["dataset"], "epoch": int(epochs["epoch"][i]),
             **{c: float(epochs[c][i]) for c in figures.MEASURED}}
            for i in range(len(epochs["epoch"]))]


def report(ablation, variant_configs, out: Path, outcomes: dict, command: str) -> dict:
    """Write OUT/NAME.csv, OUT/NAME.png and OUT/summary.md; return the summary as a dict."""
    out = Path(out)
    runs = {v.name: load_run(out / v.name, need_snapshots=False) for v, _ in variant_configs}
    results = [variant_result(v, c, runs[v.name], outcomes[v.name]) for v, c in variant_configs]
    rows = [row for v, c in variant_configs for row in curve_rows(v, c, runs[v.name])]
    files = [figures.write_curves(out / f"{ablation.name}.csv", rows)]
    if rows:
        files.insert(0, figures.draw(ablation.name, rows, out / f"{ablation.name}.png"))
    verdicts = [x.as_dict() for x in deep_verdicts(list(runs.values())) if x.hypothesis in ablation.hypotheses]
    summary = {"ablation": ablation.name, "title": ablation.title, "out": str(out), "command": command,
               "variants": results, "verdicts": verdicts, "thesis": ablation.thesis,
               "train_commands": [train_command(c, v.overrides, out / v.name) for v, c in variant_configs]}
    markdown = out / "summary.md"
    markdown.write_text(render_markdown(ablation, summary, bool(rows)))
    summary["files"] = [str(f) for f in files + [markdown]]
    return summary


def train_command(config: dict, overrides: dict, run_dir: Path) -> str:
    """The `ssldyn train` call that makes this one run: its preset, every key that differs from the
    preset and every key of `overrides` (the variant's and the user's, even where they equal the preset)."""
    from deep.config import IDENTITY_KEYS, resolve

    base = resolve(config["method"], config["dataset"], preset=config["preset"], device=config["device"])
    sets = [f"--set {k}={set_text(v)}" for k, v in config.items()
            if k not in IDENTITY_KEYS and (k in overrides or base.get(k) != v)]
    root = [f"--data-root {shlex.quote(str(config['data_root']))}"] if config["data_root"] else []
    return " ".join(["ssldyn train", f"--method {config['method']}", f"--dataset {config['dataset']}", *root,
                     f"--preset {config['preset']}", *sets, f"--out {shlex.quote(str(run_dir))}"])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _number(value, digits: str = ".3g", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:{digits}}{unit}"


def _theory_cell(theory: dict) -> str:
    """The linear theory's reading of a config (analysis.theory.deep_to_linear)."""
    parts = [f"η = {theory['eta']:g} ({theory['regime']})"]
    if theory["alpha_p"] is not None:
        parts.append(f"α_p = {theory['alpha_p']:g}")
    parts.append("τ ≡ 1 (no EMA)" if theory["beta"] is None else f"β = {theory['beta']:.3g}")
    return ", ".join(parts) + f" → {theory['predicted']}"


def _overrides_cell(overrides: dict) -> str:
    return " ".join(f"`{k}={set_text(v)}`" for k, v in overrides.items()) or "(preset)"


def render_markdown(ablation, summary: dict, has_curves: bool) -> str:
    """summary.md: the variants' table, the verdicts with their numbers, and the thesis' finding."""
    theory = ablation.maps_to_theory
    header = ["variant", "overrides", "epochs", "kNN top-1 last", "best (epoch)", "std × √d", "effective rank",
              "collapse", "time"] + (["linear theory (analysis.theory)"] if theory else [])
    lines = [f"# Ablation `{ablation.name}`: {ablation.title}", "",
             f"Made by `{summary['command']}`.", ""]
    if has_curves:
        lines += [f"![{ablation.name}]({ablation.name}.png)", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in summary["variants"]:
        c = r["collapse"]
        best = "–" if r["knn_top1_best"] is None else f"{r['knn_top1_best']:.2f}% ({r['best_epoch']})"
        time = r["status"] if r["status"] != "finished" else _duration(r["seconds"])
        cells = [r["variant"], _overrides_cell(r["overrides"]) if r["overrides"] else f"method `{r['method']}`",
                 str(r["epochs"]), _number(r["knn_top1_last"], ".2f", "%"), best, _number(c["std_last"]),
                 _number(c["effective_rank_last"]), c["status"], time]
        if theory:
            cells.append(_theory_cell(r["theory"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "std × √d: std of the ℓ2-normalised projector outputs (≈ 1 spread out, → 0 collapsed); effective "
              "rank: RankMe; both at the last epoch, on a fixed batch of test images. kNN: weighted kNN top-1 on "
              "the test set after each epoch; best is the maximum over epochs, reported beside the last."]
    devices = sorted({r["device"] for r in summary["variants"] if r["device"]})
    if devices:
        lines += ["", f"Trained on {', '.join(devices)}; time: the epochs' wall time (training and kNN evaluation)."]
    diverged = [r for r in summary["variants"] if r["status"] != "finished"]
    if diverged:
        lines += [""] + [f"- `{r['variant']}` {r['status']}: {r['message']}" for r in diverged]
    if theory:
        eta_star = summary["variants"][0]["theory"]["eta_star"]
        lines += ["", "**On the linear theory** (`analysis.theory.deep_to_linear`): one SGD step with momentum μ "
                  "is lr/(1−μ) of flow time and scales gradient and decay alike, so η = `weight_decay` as it is; "
                  f"η* is taken at the EMA's fixed point τ = 1 with σ² = 0, η* = {eta_star:g} (its largest value: "
                  "a weight decay above it is past η* for every σ²); α_p = `predictor_lr_mult`; "
                  "β = (1−ema)(1−μ)/lr per unit flow time. The cosine loss, BatchNorm and the non-linear network "
                  "have no counterpart in the theory: the mapping transplants its statement, it does not derive it."]
    lines += ["", "## Verdicts (analysis.hypotheses.deep_verdicts)", ""]
    if summary["verdicts"]:
        lines += ["| hypothesis | prediction | observation | verdict |", "|---|---|---|---|"]
        lines += [f"| {x['hypothesis']} | {x['prediction']} | {x['observation']} | **{x['outcome']}** |"
                  for x in summary["verdicts"]]
    elif ablation.hypotheses:
        lines.append(f"No verdict on {', '.join(ablation.hypotheses)}: the runs do not form a comparison the "
                     "analysis layer judges (see `ssldyn hypotheses --runs` for its rules).")
    else:
        lines.append("This ablation tests no hypothesis of SPEC §5; it remakes the thesis' figure.")
    lines += ["", "## The thesis", "", ablation.thesis, "",
              "## Each run on its own", "", "```"] + summary["train_commands"] + ["```", ""]
    return "\n".join(lines)
