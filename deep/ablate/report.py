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
from analysis.verdicts import COLLAPSED, last_finite
from deep import rundir
from deep.ablate.sweeps import set_text
from deep.seeds import spread
from figures import ablations as figures


def seed_result(task, run, outcome: dict) -> dict:
    """One seed's numbers, read from its run (an analysis.rundir.Run): kNN of the monitor (last, best
    and its epoch), the test kNN measured once at the end (summary.json), collapse status with std
    and effective rank, time, and what this call did."""
    knn = run.epochs["knn_top1"]
    best = int(np.nanargmax(knn)) if np.isfinite(knn).any() else None
    summary_path = run.path / rundir.SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {
        "seed": task.config["seed"],
        "run": str(run.path),
        "action": outcome["action"],
        "status": outcome["status"],
        "message": outcome["message"],
        "epochs": int(run.epochs["epoch"][-1]) if len(run.epochs["epoch"]) else 0,
        "monitor": summary.get("monitor", "test"),
        "knn_top1_last": last_finite(knn),
        "knn_top1_best": None if best is None else float(knn[best]),
        "best_epoch": None if best is None else int(run.epochs["epoch"][best]),
        "test_knn_top1": summary.get("test_knn_top1"),
        "collapse": run_collapse(run),
        "seconds": float(np.nansum(run.epochs["seconds"])),
        "img_per_s": summary.get("img_per_s"),
        "device": summary.get("device"),
    }


def variant_result(variant, config: dict, seeded: list) -> dict:
    """One row of the summary: the variant's overrides, every seed's numbers (`seed_result` of each
    (task, run, outcome) in `seeded`), their spread over the seeds (deep.seeds.spread), and the
    collapse status of all seeds together: the common one, or 'mixed (k of n collapsed)'."""
    seeds = [seed_result(*item) for item in seeded]
    statuses = [s["collapse"]["status"] for s in seeds]
    collapsed = sum(status == COLLAPSED for status in statuses)
    status = statuses[0] if len(set(statuses)) == 1 else f"mixed ({collapsed} of {len(statuses)} collapsed)"
    return {
        "variant": variant.name,
        "label": variant.label,
        "method": variant.method,
        "overrides": dict(variant.overrides),
        "seeds": seeds,
        "status": "finished" if all(s["status"] == "finished" for s in seeds) else "diverged",
        "epochs": min(s["epochs"] for s in seeds),
        **{key: spread([s[key] for s in seeds]) for key in ("knn_top1_last", "knn_top1_best", "test_knn_top1")},
        "std_last": spread([s["collapse"]["std_last"] for s in seeds]),
        "effective_rank_last": spread([s["collapse"]["effective_rank_last"] for s in seeds]),
        "collapse_status": status,
        "seconds": sum(s["seconds"] for s in seeds),
        "theory": deep_to_linear(config).as_dict(),
    }


def curve_rows(variant, config: dict, run) -> list:
    """The CSV rows (figures.ablations.COLUMNS) of one seed's run: one per logged epoch."""
    epochs = run.epochs
    return [{"variant": variant.name, "label": variant.label, "method": variant.method, "seed": config["seed"],
             "preset": config["preset"], "dataset": config["dataset"], "epoch": int(epochs["epoch"][i]),
             **{c: float(epochs[c][i]) for c in figures.MEASURED}, "metric_sample": metric_sample(config)}
            for i in range(len(epochs["epoch"]))]


def metric_sample(config: dict) -> str:
    """Which images std × √d and the effective rank were measured on (deep.train.evaluate's default)."""
    monitor = "validation" if config.get("val_split") else "test"
    return f"class-balanced {monitor} sample (eval_batch {config['eval_batch']}, seeded)"


def report(ablation, variant_configs, out: Path, tasks, outcomes: dict, command: str) -> dict:
    """Write OUT/NAME.csv, OUT/NAME.png and OUT/summary.md; return the summary as a dict."""
    out = Path(out)
    runs = {t.name: load_run(t.run_dir, need_snapshots=False) for t in tasks}
    by_variant = {v.name: [t for t in tasks if t.variant == v.name] for v, _ in variant_configs}
    results = [variant_result(v, c, [(t, runs[t.name], outcomes[t.name]) for t in by_variant[v.name]])
               for v, c in variant_configs]
    rows = [row for v, _ in variant_configs for t in by_variant[v.name] for row in curve_rows(v, t.config, runs[t.name])]
    files = [figures.write_curves(out / f"{ablation.name}.csv", rows)]
    if rows:
        files.insert(0, figures.draw(ablation.name, rows, out / f"{ablation.name}.png"))
    verdicts = [x.as_dict() for x in deep_verdicts(list(runs.values())) if x.hypothesis in ablation.hypotheses]
    seeds = sorted({t.config["seed"] for t in tasks})
    summary = {"ablation": ablation.name, "title": ablation.title, "out": str(out), "command": command,
               "seeds": seeds, "variants": results, "verdicts": verdicts, "thesis": ablation.thesis,
               "train_commands": [train_command(t.config, v.overrides, t.run_dir)
                                  for v, _ in variant_configs for t in by_variant[v.name]]}
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


def _seeds_cell(s: dict, digits: str = ".2f", unit: str = "") -> str:
    """'50.52%' for one seed; '50.10 ± 0.81% (49.2, 50.3, 50.8)' for several."""
    if s["n"] <= 1:
        return _number(s["mean"], digits, unit)
    each = ", ".join("–" if v is None else f"{v:{digits}}" for v in s["values"])
    return f"{s['mean']:{digits}} ± {s['std']:{digits}}{unit} ({each})"


def render_markdown(ablation, summary: dict, has_curves: bool) -> str:
    """summary.md: the variants' table, the verdicts with their numbers, and the thesis' finding."""
    theory = ablation.maps_to_theory
    monitor = summary["variants"][0]["seeds"][0]["monitor"] if summary["variants"] else "test"
    header = ["variant", "overrides", "epochs", f"kNN top-1 last ({monitor})", "test kNN top-1", "std × √d",
              "effective rank", "collapse", "time"] + (["linear theory (analysis.theory)"] if theory else [])
    seeds = summary["seeds"]
    lines = [f"# Ablation `{ablation.name}`: {ablation.title}", "",
             f"Made by `{summary['command']}`; seed{'s' if len(seeds) > 1 else ''} "
             f"{', '.join(str(s) for s in seeds)}.", ""]
    if has_curves:
        lines += [f"![{ablation.name}]({ablation.name}.png)", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in summary["variants"]:
        time = r["status"] if r["status"] != "finished" else _duration(r["seconds"])
        cells = [r["variant"], _overrides_cell(r["overrides"]) if r["overrides"] else f"method `{r['method']}`",
                 str(r["epochs"]), _seeds_cell(r["knn_top1_last"], ".2f", "%"), _seeds_cell(r["test_knn_top1"], ".2f", "%"),
                 _seeds_cell(r["std_last"], ".3g"), _seeds_cell(r["effective_rank_last"], ".3g"), r["collapse_status"],
                 time]
        if theory:
            cells.append(_theory_cell(r["theory"]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "With several seeds: mean ± sample std (every seed's value). std × √d: std of the ℓ2-normalised "
              "projector outputs (≈ 1 spread out, → 0 collapsed); effective rank: RankMe; both at the last epoch, on "
              f"a seeded class-balanced sample of the {monitor} images (`eval_batch`, deep.evaluate.sample). kNN: weighted kNN top-1 on the {monitor} set after each epoch "
              "(the monitor); test kNN: measured once, after the last epoch"
              + (" (the monitor is the test set here)." if monitor == "test" else ".")]
    devices = sorted({s["device"] for r in summary["variants"] for s in r["seeds"] if s["device"]})
    if devices:
        lines += ["", f"Trained on {', '.join(devices)}; time: the epochs' wall time (training and kNN evaluation)."]
    diverged = [(r["variant"], s) for r in summary["variants"] for s in r["seeds"] if s["status"] != "finished"]
    if diverged:
        lines += [""] + [f"- `{name}` seed {s['seed']} {s['status']}: {s['message']}" for name, s in diverged]
    if theory:
        eta_star = summary["variants"][0]["theory"]["eta_star"]
        lines += ["", "**On the linear theory** (`analysis.theory.deep_to_linear`): one SGD step with momentum μ "
                  "is lr/(1−μ) of flow time and scales gradient and decay alike, so η = `weight_decay` as it is; "
                  f"η* is taken at the EMA's fixed point τ = 1 with σ² = 0, η* = {eta_star:g} (its largest value: "
                  "a weight decay above it is past η* for every σ²); α_p = `predictor_lr_mult`; "
                  "β = (1−ema)(1−μ)/lr per unit flow time. The cosine loss, BatchNorm and the non-linear network "
                  "have no counterpart in the theory: the mapping transplants its statement, it does not derive it, "
                  "and compares different units, so H5 on these runs is reported, not judged."]
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
