"""The collapse map's figure (issue 12, item 3), drawn from thresholds.csv and probes.csv alone.

Two panels, weight decay on a log axis: the α_p line (at ema 0.9) and the EMA line (at α_p = 1).
For each predictor: every probe (healthy ○, collapsed × by its setting's collapse rule, seeds side by
side), each setting's bracket over its seeds (a bar) with the geometric mean of the seeds' thresholds
(a line through the settings), and the theory's threshold η*(σ², τ) from the measured σ² and τ:
with no constant (η = weight decay, a star) and with one constant fitted on the reference setting
(dashed). `ssldyn figures` redraws figures/collapse_map/collapse_map.png from the committed CSVs.
"""
import csv
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.observables import CollapseRule  # noqa: E402
from ssldyn.textfile import open_text  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "collapse_map"
COLOURS = {"linear": "tab:blue", "mlp": "tab:orange"}
LINES = (("predictor_lr_mult", "ema", 0.9, "α_p (predictor lr ratio), ema 0.9"),
         ("ema", "predictor_lr_mult", 1.0, "EMA rate m (0 = SimSiam), α_p = 1"))


def _number(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def read_rows(path: Path) -> list[dict]:
    """A CSV as dicts, numbers as floats where they parse."""
    with open_text(path) as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            try:
                row[key] = _number(value)
            except ValueError:
                pass
    return rows


def _positions(values) -> dict:
    """x position of each knob value: log10 for α_p, evenly spaced categories for the EMA."""
    ordered = sorted(set(values))
    return {value: index for index, value in enumerate(ordered)}


def _collapsed(probe: dict, threshold_row: dict) -> bool:
    """A probe's outcome by its setting's collapse rule (thresholds.csv's rule_* columns), or as stored
    where the map predates them (effective rank < 2) or the probe lacks the rule's observable (the map's
    own read-back refuses such a probe, `deep.collapse_map.runner.judged`, so the stored outcome is what it
    read)."""
    if probe["outcome"] == "diverged" or threshold_row.get("rule_observable") in (None, ""):
        return probe["outcome"] != "healthy"
    rule = CollapseRule(threshold_row["rule_observable"], float(threshold_row["rule_level"]),
                        str(threshold_row["rule_falling"]) == "True")
    try:
        return rule.collapsed(probe)
    except ValueError:
        return probe["outcome"] != "healthy"


def draw(thresholds: list[dict], probes: list[dict], png: Path) -> Path:
    """One panel per grid line that has a setting (a map of one line, e.g. `--ema` with no value, has one)."""
    lines = [line for line in LINES if any(r[line[1]] == line[2] for r in thresholds)] or list(LINES)
    fig, axes = plt.subplots(1, len(lines), figsize=(11 if len(lines) == 2 else 8, 4.4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (knob, fixed, fixed_value, title) in zip(axes, lines):
        on_line = [r for r in thresholds if r[fixed] == fixed_value]
        positions = _positions([r[knob] for r in on_line])
        predictors = list(dict.fromkeys(r["predictor"] for r in on_line))
        for p_index, predictor in enumerate(predictors):
            colour, shift = COLOURS.get(predictor, "tab:grey"), 0.18 * (p_index - (len(predictors) - 1) / 2)
            mine = sorted((r for r in on_line if r["predictor"] == predictor), key=lambda r: r[knob])
            for r in mine:
                x = positions[r[knob]] + shift
                seeds = sorted({p["seed"] for p in probes if p["setting"] == r["setting"]})
                for s_index, seed in enumerate(seeds):
                    dx = 0.04 * (s_index - (len(seeds) - 1) / 2)
                    for p in probes:
                        if p["setting"] == r["setting"] and p["seed"] == seed and p["epochs"] == min(
                                q["epochs"] for q in probes if q["setting"] == r["setting"]):
                            collapsed = _collapsed(p, r)
                            ax.scatter(x + dx, p["weight_decay"], s=14, color=colour, linewidths=0.8,
                                       marker="x" if collapsed else "o", facecolors=colour if collapsed else "none")
                if math.isfinite(r["weight_decay_low"]):
                    ax.plot([x, x], [r["weight_decay_low"], r["weight_decay_high"]], color=colour, linewidth=5,
                            alpha=0.35, solid_capstyle="butt")
            located = [r for r in mine if math.isfinite(r["threshold"])]
            ax.plot([positions[r[knob]] + shift for r in located], [r["threshold"] for r in located], color=colour,
                    marker="_", markersize=14, label=f"{predictor} predictor: threshold (seeds' geometric mean)")
            predicted = [r for r in mine if math.isfinite(r.get("predicted_eta_star", math.nan))]
            if predicted:
                ax.plot([positions[r[knob]] + shift for r in predicted], [r["predicted_eta_star"] for r in predicted],
                        color=colour, linestyle="--", linewidth=1,
                        label=f"{predictor}: η*(σ², τ) measured, one constant fitted")
            unfitted = [r for r in mine if math.isfinite(r.get("eta_star_mapped", math.nan))]
            if unfitted:
                ax.scatter([positions[r[knob]] + shift for r in unfitted], [r["eta_star_mapped"] for r in unfitted],
                           marker="*", s=70, color=colour, label=f"{predictor}: η* = τ²/4(1+σ²) measured, no constant")
        ax.set_xticks(list(positions.values()), [f"{value:g}" for value in positions])
        ax.set_xlim(-0.6, len(positions) - 0.4)
        ax.set_yscale("log")
        ax.set_xlabel(title)
        ax.grid(True, which="major", axis="y", alpha=0.3)
    axes[0].set_ylabel("weight decay")
    handles = [plt.Line2D([], [], color="grey", marker="o", markerfacecolor="none", linestyle="", label="probe: healthy"),
               plt.Line2D([], [], color="grey", marker="x", linestyle="", label="probe: collapsed")]
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(handles + list(seen.values()), [h.get_label() for h in handles] + list(seen), loc="lower center",
               ncol=len(lines) + 1, fontsize=8, frameon=False)
    fig.suptitle("Where BYOL collapses: weight decay threshold per setting (bars: bracket over seeds)",
                 fontsize=11 if len(lines) == 2 else 10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    png = Path(png)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def redraw(out_dir: Path, part: str = "") -> list:
    """`ssldyn figures` recipe: out_dir/collapse_map/collapse_map.png from the committed CSVs; with `part`, the
    map in figures/collapse_map/PART/ (more seeds for some settings), whose probes.csv holds only the probes it
    trained and reads the others from the committed map's probes.csv."""
    thresholds, probes = DATA_DIR / part / "thresholds.csv", DATA_DIR / "probes.csv"
    if not thresholds.is_file() or not probes.is_file():
        print(f"collapse map: skipped, no stored data at {thresholds.parent}; make it with `ssldyn collapse-map --preset cpu "
              "--out runs/collapse-map`, then copy its thresholds.csv, probes.csv, checks.csv and summary.md there",
              file=sys.stderr)
        return []
    target = Path(out_dir) / "collapse_map" / part
    target.mkdir(parents=True, exist_ok=True)
    known = read_rows(probes) + (read_rows(DATA_DIR / part / "probes.csv") if part else [])
    return [draw(read_rows(thresholds), known, target / "collapse_map.png")]
