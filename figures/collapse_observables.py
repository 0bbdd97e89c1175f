"""The candidate collapse observables against weight decay (issue 20, item 2), drawn from a scan's
observables.csv alone (`ssldyn collapse-map --scan N`).

One panel per observable (effective rank, covariance rank, std × √d, kNN top-1), weight decay on a log
axis, and where the scan measured it one panel per setting with its per-mode spectrum; per setting, every seed's probe (a dot) and the seeds' mean (a line); a dashed line where the
setting's sharpest observable steps (the onset of dimensional collapse) and a dotted one where collapse
is complete. `ssldyn figures` redraws figures/collapse_map/observables.png from the committed CSV.
"""
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.metrics import COVARIANCE_ABSOLUTE_FLOOR, MODE_COLUMNS  # noqa: E402
from figures.collapse_map import DATA_DIR, read_rows  # noqa: E402

LABELS = {"effective_rank": "effective rank (RankMe)", "covariance_rank": "covariance rank (≥ 1% of the top)",
          "std": "std × √d", "knn_top1": "kNN top-1 (%)"}
SPECTRUM_FLOOR = 1e-6  # the spectrum panels' lowest variance drawn


def draw(rows: list[dict], readings: list[dict], png: Path) -> Path:
    """rows: observables.csv rows; readings: `deep.collapse_map.scan.read_scan`'s per-setting results. A
    second row of panels, one per setting, draws the per-mode spectrum (the seeds' mean variance of each of
    the MODE_COLUMNS directions) where the scan measured it."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    spectra = [s for s in settings if any(math.isfinite(_float(r.get(MODE_COLUMNS[0]))) for r in rows if r["setting"] == s)]
    columns = max(len(LABELS), len(spectra))
    fig, grid = plt.subplots(1 + bool(spectra), columns, figsize=(4.2 * columns, 3.8 * (1 + bool(spectra))),
                             constrained_layout=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, label) in zip(grid[0], LABELS.items()):
        for colour, setting in zip(colours, settings):
            mine = [r for r in rows if r["setting"] == setting and r["outcome"] != "diverged"]
            wds = sorted({r["weight_decay"] for r in mine})
            ax.scatter([r["weight_decay"] for r in mine], [r[name] for r in mine], s=12, alpha=0.5, color=colour)
            means = [_mean([r[name] for r in mine if r["weight_decay"] == w]) for w in wds]
            ax.plot(wds, means, color=colour, label=setting)
            reading = next((x for x in readings if x["setting"] == setting), None)
            if reading and math.isfinite(reading["onset"]):
                ax.axvline(reading["onset"], color=colour, linestyle="--", linewidth=0.8)
            if reading and math.isfinite(reading["complete"]):
                ax.axvline(reading["complete"], color=colour, linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("weight decay")
        ax.set_title(label, fontsize=10)
    grid[0][0].legend(fontsize=8)
    for ax in grid[0][len(LABELS):]:
        ax.axis("off")
    for index, ax in enumerate(grid[1] if spectra else []):
        if index >= len(spectra):
            ax.axis("off")
            continue
        _draw_spectrum(ax, [r for r in rows if r["setting"] == spectra[index] and r["outcome"] != "diverged"],
                       spectra[index], next((x for x in readings if x["setting"] == spectra[index]), None))
    fig.suptitle("Collapse observables against weight decay (dots: seeds; dashed: onset on the sharpest "
                 "observable; dotted: complete collapse)", fontsize=10)
    png = Path(png)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def _draw_spectrum(ax, mine: list[dict], setting: str, reading: dict | None) -> None:
    """One setting's per-mode spectrum: the seeds' mean variance of each leading direction against weight
    decay (log-log). Variances below SPECTRUM_FLOOR (a collapsed batch's rounding noise reaches 1e-30 and
    less) are drawn on the floor; the dashed grey line is the absolute floor the covariance rank counts from."""
    wds = sorted({r["weight_decay"] for r in mine})
    shades = plt.cm.viridis([k / max(1, len(MODE_COLUMNS) - 1) for k in range(len(MODE_COLUMNS))])
    for k, (name, shade) in enumerate(zip(MODE_COLUMNS, shades), start=1):
        means = [_mean([_float(r.get(name)) for r in mine if r["weight_decay"] == w]) for w in wds]
        ax.plot(wds, [max(m, SPECTRUM_FLOOR) for m in means], color=shade, marker="o", markersize=3, label=f"mode {k}")
    ax.axhline(COVARIANCE_ABSOLUTE_FLOOR, color="grey", linestyle="--", linewidth=0.6)
    ax.set_ylim(SPECTRUM_FLOOR / 2, 1.5)
    if reading and math.isfinite(reading["onset"]):
        ax.axvline(reading["onset"], color="grey", linestyle="--", linewidth=0.8)
    if reading and math.isfinite(reading["complete"]):
        ax.axvline(reading["complete"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weight decay")
    ax.set_title(f"per-mode spectrum: variance of each direction\n{setting} (≤ {SPECTRUM_FLOOR:g} drawn at it)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _mean(values) -> float:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def redraw(out_dir: Path, name: str = "observables") -> list:
    """`ssldyn figures` recipe: out_dir/collapse_map/NAME.png from the committed NAME.csv (a scan's
    observables.csv: the reference scan's, or another's copied there under its own name)."""
    from analysis.observables import read_scan

    data = DATA_DIR / f"{name}.csv"
    if not data.is_file():
        print(f"collapse observables: skipped, no stored scan at {data}; make it with `ssldyn collapse-map --preset cpu "
              "--scan 6 --wd-range 1e-3 3e-2 --alpha-p 1 --ema 0.9 --out runs/collapse-scan`, then copy its "
              f"observables.csv there as {name}.csv", file=sys.stderr)
        return []
    rows = read_rows(data)
    weight_decays = sorted({r["weight_decay"] for r in rows})
    target = Path(out_dir) / "collapse_map"
    target.mkdir(parents=True, exist_ok=True)
    return [draw(rows, read_scan(rows, weight_decays, int(rows[0]["classes"])), target / f"{name}.png")]
