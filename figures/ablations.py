"""Figures of the ablation sweeps (`ssldyn ablate NAME`), drawn from their per-epoch CSV alone.

A sweep writes OUT/NAME.csv (one row per variant, seed and epoch) and draws OUT/NAME.png from it
with `draw`: one line per variant, the mean over its seeds, in a band from the lowest to the
highest seed when there are several. The committed copies live in figures/ablations/NAME.csv, and `ssldyn figures` redraws
figures/ablations/NAME.png from them (`redraw`) without retraining; an ablation whose CSV has not
been committed yet is skipped with a message saying how to make it.
"""
import csv
import math
import shutil
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.plots import COLLAPSE_PANELS  # noqa: E402
from analysis.verdicts import COLLAPSED_RANK, COLLAPSED_STD  # noqa: E402
from deep.ablate.sweeps import ABLATIONS  # noqa: E402
from ssldyn.textfile import open_text  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "ablations"  # the committed CSVs
COLUMNS = ("variant", "label", "method", "seed", "preset", "dataset", "epoch",
           "loss", "knn_top1", "knn_top5", "std", "effective_rank", "metric_sample")
MEASURED = COLUMNS[COLUMNS.index("loss"):COLUMNS.index("metric_sample")]
# CSVs written before `metric_sample` (the committed sweeps): std and effective rank were measured on the
# monitor's first eval_batch images, which in the class-ordered CIFAR-10 JPEG set are one class (issue 20).
LEGACY_COLUMNS = COLUMNS[:-1]
LEGACY_SAMPLE = "first eval_batch images (one class)"  # the committed sweeps: the first 512 test images of CIFAR-10 JPEG
PANEL_LABELS = dict(COLLAPSE_PANELS)
# Losses of different methods (InfoNCE, Barlow Twins, cosine) are not on one scale: the methods
# figure leaves the loss out, as the thesis' Fig. 4.6 does.
PANELS = {name: ("knn_top1", "std", "effective_rank") if name == "methods"
          else ("loss", "knn_top1", "std", "effective_rank") for name in ABLATIONS}
MARKERS_UP_TO = 30  # epochs; longer curves are drawn without markers


def write_curves(path: Path, rows) -> Path:
    """Write `rows` (dicts with COLUMNS; NaN for a value not logged) as the ablation's CSV."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS])
    return path


def _cell(value) -> str:
    return f"{value:.8g}" if isinstance(value, float) else str(value)


def read_curves(path: Path) -> list:
    """The rows of an ablation CSV: text columns as str, `epoch` as int, measurements as float."""
    path = Path(path)
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) not in (COLUMNS, LEGACY_COLUMNS):
            raise ValueError(f"{path}: expected the columns {', '.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append({"metric_sample": LEGACY_SAMPLE, **row, "seed": int(row["seed"]), "epoch": int(row["epoch"]),
                             **{c: float(row[c]) for c in MEASURED}})
            except ValueError as err:
                raise ValueError(f"{path} line {lineno}: {err}") from None
    return rows


def _series(rows) -> dict:
    """{variant: (label, epochs, {column: seeds × epochs array}, seeds)} in the order the variants
    first appear; epochs are those every seed of the variant logged."""
    grouped = {}
    for row in rows:
        label, by_seed = grouped.setdefault(row["variant"], (row["label"], {}))
        by_seed.setdefault(row["seed"], {})[row["epoch"]] = row
    out = {}
    for variant, (label, by_seed) in grouped.items():
        epochs = sorted(set.intersection(*(set(e) for e in by_seed.values())))
        values = {c: np.array([[by_seed[s][e][c] for e in epochs] for s in sorted(by_seed)]) for c in MEASURED}
        out[variant] = (label, epochs, values, sorted(by_seed))
    return out


def _legend_label(label: str, knn) -> str:
    """The label with the last and best kNN of the seeds' mean curve (± the seeds' std at the last epoch)."""
    mean = np.nanmean(knn, axis=0) if np.isfinite(knn).any() else np.full(knn.shape[1], np.nan)
    finite = mean[np.isfinite(mean)]
    if not finite.size:
        return f"{label} (no kNN)"
    spread = f" ± {np.nanstd(knn[:, -1], ddof=1):.1f}, {len(knn)} seeds" if len(knn) > 1 else ""
    return f"{label} (kNN last {finite[-1]:.1f}%{spread}, best {finite.max():.1f}%)"


def draw(name: str, rows, png: Path) -> Path:
    """The figure of ablation `name`: one panel per quantity of PANELS[name] against epoch, one line
    per variant, the collapse thresholds of analysis.verdicts dashed."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; allowed: {', '.join(ABLATIONS)}")
    if not rows:
        raise ValueError(f"ablation {name}: no per-epoch rows to draw")
    series = _series(rows)
    panels = PANELS[name]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    colours = plt.cm.tab10.colors
    for index, (label, epochs, values, seeds) in enumerate(series.values()):
        marker = "o" if max(epochs) <= MARKERS_UP_TO else None
        colour = colours[index % len(colours)]
        for ax, key in zip(axes[0], panels):
            ax.plot(epochs, values[key].mean(axis=0), marker=marker, markersize=3, color=colour,
                    label=_legend_label(label, values["knn_top1"]) if key == panels[0] else None)
            if len(seeds) > 1:
                ax.fill_between(epochs, values[key].min(axis=0), values[key].max(axis=0), color=colour, alpha=0.2,
                                linewidth=0)
    samples = sorted({row["metric_sample"] for row in rows if row["metric_sample"]})
    for ax, key in zip(axes[0], panels):
        sample = f"\non {' / '.join(samples)}" if key in ("std", "effective_rank") and samples else ""
        ax.set_title(PANEL_LABELS[key] + sample, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key in ("std", "effective_rank"):
            threshold = COLLAPSED_STD if key == "std" else COLLAPSED_RANK
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set_ylim(bottom=0)
    first = rows[0]
    seeds = sorted({row["seed"] for row in rows})
    band = "; bands: lowest to highest seed" if any(len(v[3]) > 1 for v in series.values()) else ""
    fig.suptitle(f"{ABLATIONS[name].title}: {first['dataset']}, preset {first['preset']}, "
                 f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; dashed: collapse thresholds{band}")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=min(3, len(series)),
               fontsize=9, frameon=False)
    rows_of_legend = math.ceil(len(series) / 3)
    fig.tight_layout(rect=(0, 0.07 * rows_of_legend + 0.02, 1, 1))
    png = Path(png)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


def redraw(name: str, out_dir: Path) -> list:
    """`ssldyn figures` recipe: out_dir/ablations/NAME.png from the committed DATA_DIR/NAME.csv (copied
    beside it when out_dir is elsewhere). Without the CSV: a message on stderr and nothing written."""
    stored = DATA_DIR / f"{name}.csv"
    if not stored.is_file():
        print(f"ablation {name}: skipped, no stored data at {stored}; make it with `ssldyn ablate {name} "
              f"--preset cpu --out runs/ablate-{name}`, then copy runs/ablate-{name}/{name}.csv there",
              file=sys.stderr)
        return []
    target = Path(out_dir) / "ablations"
    target.mkdir(parents=True, exist_ok=True)
    table = target / stored.name
    if table.resolve() != stored.resolve():
        shutil.copyfile(stored, table)
    return [draw(name, read_curves(stored), target / f"{name}.png"), table]
