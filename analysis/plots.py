"""Figures of a run: the thesis' Fig. 4.8 predictor panels and the collapse curves (Fig. 4.7), as PNG + CSV.

Each function writes its PNG and the CSV holding exactly the plotted numbers, and returns both paths.
"""
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.trajectory import PredictorTrajectory  # noqa: E402
from analysis.verdicts import COLLAPSED_RANK, COLLAPSED_STD  # noqa: E402

COLLAPSE_PANELS = (("loss", "training loss (epoch mean)"), ("std", "std of ℓ2-normalised outputs × √d"),
                   ("effective_rank", "effective rank (RankMe)"), ("knn_top1", "kNN top-1 (%)"))


def _write_csv(path: Path, header, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _time(value) -> str:
    """A step as a whole number, a flow time with 6 significant digits."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.6g}"


def _time_colours(count: int):
    return plt.cm.viridis(np.linspace(0, 1, count)) if count > 1 else ["tab:blue"]


def predictor_panels(traj: PredictorTrajectory, out_dir: Path, title: str, stem: str = "predictor",
                     time_column: str = "step", time_label: str = "training step") -> list:
    """Fig. 4.8: eigenvalues of F, eigenvalues of W_p, alignment of W_p u_j with u_j (one line per
    snapshot, dark = early, yellow = late), and asymmetry / relative commutator / 1 − mean alignment
    over time. Writes STEM.png, STEM_spectra.csv (long format) and STEM_summary.csv; the time axis
    is `traj.step`, named `time_column` in the CSVs and legends and `time_label` on the axis."""
    out_dir = Path(out_dir)
    count, dim = traj.F_eigenvalues.shape
    index = np.arange(1, dim + 1)
    colours = _time_colours(count)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    floor = max(np.abs(traj.F_eigenvalues).max(), 1e-300) * 1e-8
    for row in range(count):
        label = f"{time_column} {_time(traj.step[row])}" if row in (0, count - 1) else None
        axes[0].plot(index, np.clip(traj.F_eigenvalues[row], floor, None), color=colours[row], label=label)
        axes[1].plot(index, traj.W_p_eigenvalues[row], color=colours[row], label=label)
        axes[2].plot(index, traj.alignment[row], color=colours[row], label=label)
    axes[0].set_yscale("log")
    axes[0].set_title("eigenvalues of F (sorted)")
    axes[1].set_title("eigenvalues of $W_p$ (real part, sorted)")
    axes[2].set_title("alignment $|u_j^T W_p u_j| / \\|W_p u_j\\|$")
    axes[2].set_ylim(-0.02, 1.02)
    axes[0].set_xlabel("index j (largest first)")
    axes[1].set_xlabel("index j (largest first)")
    axes[2].set_xlabel("eigenvector $u_j$ of F (largest eigenvalue first)")
    for ax in axes[:3]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    axes[3].plot(traj.step, traj.asymmetry, "o-", label="asymmetry $\\|W_p-W_p^T\\|/\\|W_p\\|$")
    axes[3].plot(traj.step, traj.relative_commutator, "s-", label="$\\|[F,W_p]\\|/(\\|F\\|\\|W_p\\|)$")
    axes[3].plot(traj.step, 1 - traj.mean_alignment, "^-", label="1 − mean alignment")
    axes[3].set_xlabel(time_label)
    axes[3].set_title("predictor over training")
    axes[3].set_ylim(bottom=0)
    axes[3].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    png = out_dir / f"{stem}.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)

    spectra = out_dir / f"{stem}_spectra.csv"
    _write_csv(spectra, (time_column, "epoch", "j", "F_eigenvalue", "W_p_eigenvalue", "alignment"),
               [(_time(traj.step[t]), int(traj.epoch[t]), j + 1, f"{traj.F_eigenvalues[t, j]:.8g}",
                 f"{traj.W_p_eigenvalues[t, j]:.8g}", f"{traj.alignment[t, j]:.8g}")
                for t in range(count) for j in range(dim)])
    summary = out_dir / f"{stem}_summary.csv"
    _write_csv(summary, (time_column, "epoch", "asymmetry", "relative_commutator", "mean_alignment"),
               [(_time(traj.step[t]), int(traj.epoch[t]), f"{traj.asymmetry[t]:.8g}",
                 f"{traj.relative_commutator[t]:.8g}", f"{traj.mean_alignment[t]:.8g}") for t in range(count)])
    return [png, spectra, summary]


def collapse_curves(epochs: dict, out_dir: Path, title: str) -> list:
    """Loss, std, effective rank and kNN top-1 against epoch (thesis Fig. 4.7): collapse.png + collapse.csv."""
    out_dir = Path(out_dir)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for ax, (key, label) in zip(axes, COLLAPSE_PANELS):
        values = epochs[key]
        if np.isfinite(values).any():
            ax.plot(epochs["epoch"], values, "o-", markersize=3)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label)
        ax.set_xlabel("epoch")
    # The collapse thresholds of analysis.verdicts.collapse_status, for reading the curves.
    axes[1].axhline(COLLAPSED_STD, color="tab:red", linestyle="--", linewidth=1, label="collapse threshold")
    axes[2].axhline(COLLAPSED_RANK, color="tab:red", linestyle="--", linewidth=1, label="collapse threshold")
    for ax in axes[1:3]:
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    png = out_dir / "collapse.png"
    fig.savefig(png, dpi=80)
    plt.close(fig)
    fields = ("epoch", "loss", "std", "effective_rank", "knn_top1", "knn_top5")
    table = out_dir / "collapse.csv"
    _write_csv(table, fields, [[f"{epochs[f][i]:.8g}" for f in fields] for i in range(len(epochs["epoch"]))])
    return [png, table]
