"""The ladder (issue 21): how many directions survive each weight decay, rung by rung, against the linear
theory's unfitted predictions. `ssldyn figures` redraws figures/ladder/ladder.png from the committed CSVs.

One panel per rung present, weight decay on a log axis:
- R1 (linear network, the theory's squared-error loss; figures/ladder/r1.csv, a copy of `ssldyn ladder
  --rung r1`'s ladder.csv, and r1_staircase.csv): per setting (α_p a colour, the EMA rate a line style) the
  directions W keeps, the seeds' mean as a line with markers and their min–max as a band; the staircase
  from the data's covariances (black steps); the population recursion from the runs' own starts (dashed).
- R2 (the same with BYOL's cosine loss; r2.csv, r2_staircase.csv): the measured counts (against W's largest
  direction, `analysis.ladder.relative_modes`: the cosine loss does not see W's scale), and the L2
  staircase as a faint reference only: the theory says nothing about the cosine loss's counts, and the
  population recursion is the L2 model's too, so it is not drawn.
- R3 (ResNet-18, the collapse map's probes; collapse_map/observables_6ep.csv, the reference scans at the
  remade map's 6-epoch probe length, the same probes continued to 12
  epochs at constant lr from collapse_map/length_linear.csv and length_mlp.csv, dotted, and ladder/r3_l2.csv
  for the squared-error loss, dashed): effective rank, the seeds' mean and min–max per setting; the theory
  makes no prediction in these units.
Only rows of the main length are drawn (the smallest epochs per setting; the longer ones are the 2× check).
"""
import math
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

FIGURES_DIR = Path(__file__).resolve().parent
ALPHA_COLOURS = {0.3: "tab:blue", 1.0: "tab:orange", 3.0: "tab:green", 10.0: "tab:red"}  # the ladder's α_p
EMA_STYLES = {0.0: ("-", "o"), 0.9: (":", "^"), 0.99: ("-.", "s")}  # (line style, marker) per EMA rate
DODGE = 0.025  # log10 units between settings' markers at one weight decay, so that equal counts stay visible
R1_COMMAND = ("`ssldyn ladder --rung r1 --out runs/ladder-r1`, then copy its ladder.csv and staircase.csv to "
              "figures/ladder/r1.csv and r1_staircase.csv")


def _spread(rows, column: str) -> tuple[list, list, list, list]:
    """Weight decays, and the seeds' mean, min and max of `column` at each."""
    wds = sorted({r["weight_decay"] for r in rows})
    values = [[r[column] for r in rows if r["weight_decay"] == w and math.isfinite(r[column])] for w in wds]
    keep = [i for i, v in enumerate(values) if v]
    return ([wds[i] for i in keep], [sum(values[i]) / len(values[i]) for i in keep],
            [min(values[i]) for i in keep], [max(values[i]) for i in keep])


def _setting_style(rows) -> dict:
    """setting -> (colour, line style, marker, dodge factor): α_p picks the colour and the EMA rate the style,
    by value, so that a setting looks the same in every panel."""
    settings = sorted({(r["predictor_lr_mult"], r["ema"], r["setting"]) for r in rows})
    middle = (len(settings) - 1) / 2
    return {name: (ALPHA_COLOURS.get(a, "tab:purple"), *EMA_STYLES.get(m, ("--", "D")), 10 ** (DODGE * (i - middle)))
            for i, (a, m, name) in enumerate(settings)}


def draw_counts(ax, rows: list[dict], staircase: list[dict], *, predicted: bool,
                ylabel: str = "surviving directions of W (σ² > 0.1·η/λ_max(Ā))") -> None:
    """One linear rung: the measured counts per setting, the staircase and (`predicted`) the population
    recursion; without `predicted` the staircase is a faint L2 reference."""
    from analysis.ladder import _converged

    styles = _setting_style(rows)
    settled = [r["modes"] for r in rows if _converged(r) and math.isfinite(r["modes"])]
    top = max([r["staircase"] for r in staircase] + settled + [1]) + 1.5  # unsettled counts above: marked, not scaled
    for setting, (colour, line, marker, dodge) in styles.items():
        mine = [r for r in rows if r["setting"] == setting]
        wds, mean, low, high = _spread(mine, "modes")
        if not wds:  # nothing measured (every run diverged, or no spectrum stored)
            continue
        x = [w * dodge for w in wds]
        ax.fill_between(x, [min(v, top) for v in low], [min(v, top) for v in high], color=colour, alpha=0.08,
                        linewidth=0)
        ax.plot(x, [min(v, top) for v in mean], color=colour, linestyle=line, linewidth=1.4,
                label=f"α_p {mine[0]['predictor_lr_mult']:g}, EMA {mine[0]['ema']:g}")
        for xi, wd, m in zip(x, wds, mean):
            done = all(_converged(r) for r in mine if r["weight_decay"] == wd)
            ax.plot([xi], [min(m, top)], linestyle="none", marker="^" if m > top else marker, markersize=4.5,
                    color=colour, markerfacecolor=colour if done else "white")
            if m > top:
                ax.annotate(f"{m:.0f}", (xi, top), textcoords="offset points", xytext=(0, 4), ha="center",
                            fontsize=6, color=colour)
        if predicted:
            wds, mean, _, _ = _spread(mine, "population")
            ax.plot(wds, [min(v, top) for v in mean], color=colour, linestyle="--", linewidth=0.8, alpha=0.6, zorder=1)
    ax.set_ylim(-0.4, top + 0.9)
    ax.plot([], [], linestyle="none", marker="o", color="grey", markerfacecolor="white",
            label="open: count still moving (half, full or 2× length differ); ▲ off scale")
    if staircase:
        label, style = (("staircase η_j* (theory)", dict(color="black", linewidth=1.6)) if predicted else
                        ("L2 theory (not R2's prediction)", dict(color="grey", linewidth=1.2, alpha=0.45)))
        ax.step([r["weight_decay"] for r in staircase], [r["staircase"] for r in staircase], where="post",
                label=label, zorder=1, **style)
    if predicted:
        ax.plot([], [], color="grey", linestyle="--", linewidth=0.8, label="population recursion (setting's colour)")
    ax.set_ylabel(ylabel)


def draw_rank(ax, rows: list[dict], l2_rows: list[dict] = (), long_rows: list[dict] = ()) -> None:
    """R3: effective rank per setting, the seeds' mean and min–max (`l2_rows`: the same probes with the
    squared-error loss, dashed; `long_rows`: the cosine probes continued at constant lr, dotted), and the
    note that nothing is predicted."""
    colours = dict(zip(dict.fromkeys(r["predictor"] for r in [*rows, *l2_rows, *long_rows]),
                       ("tab:blue", "tab:orange")))
    for mine_rows, line, loss in ((rows, "-", "cosine"), (long_rows, ":", "cosine"), (l2_rows, "--", "squared error")):
        for setting in dict.fromkeys(r["setting"] for r in mine_rows):
            mine = [r for r in mine_rows if r["setting"] == setting]
            colour = colours[mine[0]["predictor"]]
            wds, mean, low, high = _spread(mine, "effective_rank")
            ax.fill_between(wds, low, high, color=colour, alpha=0.15, linewidth=0)
            ax.plot(wds, mean, color=colour, linestyle=line, marker={"-": "o", ":": "s", "--": "x"}[line], markersize=4,
                    label=f"{mine[0]['predictor']} predictor, α_p {mine[0]['predictor_lr_mult']:g}, "
                          f"EMA {mine[0]['ema']:g}, {loss} loss, {int(mine[0]['epochs'])} epochs"
                          + ("" if line != "--" else f" ({setting.rsplit('-', 1)[-1]}; finite probes only)"))
    ax.text(0.5, 0.96, "no prediction in these units\n(BatchNorm, decay on every weight);\n"
            "6-epoch probes fail their length check:\nthe rank keeps falling at 12 (constant lr)",
            transform=ax.transAxes, ha="center", va="top", fontsize=9, style="italic",
            bbox=dict(facecolor="white", edgecolor="grey", alpha=0.9))
    ax.set_ylabel("effective rank (RankMe) of the embeddings")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.75)  # room above the data for the note and the legend
    ax.legend(fontsize=6.5, loc="upper right", bbox_to_anchor=(1.0, 0.74))


def draw(panels: list[tuple[str, callable]], png: Path) -> Path:
    """panels: (title, draw(ax)) per rung, left to right; one legend of the linear rungs' settings below."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False, layout="constrained")
    for ax, (title, draw_panel) in zip(axes[0], panels):
        draw_panel(ax)
        ax.set_xscale("log")
        ax.set_xlabel("weight decay η")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.25, which="both", linewidth=0.5)
    handles = {label: handle for ax in axes[0] if ax.get_ylabel().startswith("surviving")
               for handle, label in zip(*ax.get_legend_handles_labels())}
    handles = dict(sorted(handles.items(), key=lambda kv: not kv[0].startswith("α_p"))) | {
        "band: seeds' min–max": Line2D([], [], color="grey", alpha=0.3, linewidth=6)}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle("The ladder: directions that survive weight decay, from the linear theory to ResNet-18 "
                 "(lines: seeds' mean)", fontsize=11)
    png = Path(png)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def _main_rows(rows: list[dict]) -> list[dict]:
    from analysis.ladder import settle

    return [r for r in settle(rows) if r["outcome"] != "diverged"]


def _staircase(path: Path) -> list[dict]:
    from figures.collapse_map import read_rows

    return read_rows(path) if path.is_file() else []


def _probes(path: Path) -> list[dict]:
    """The collapse map's probes of each setting's main length that did not diverge."""
    from figures.collapse_map import read_rows

    rows = read_rows(path)
    shortest = {s: min(r["epochs"] for r in rows if r["setting"] == s) for s in {r["setting"] for r in rows}}
    return [r for r in rows if r["epochs"] == shortest[r["setting"]] and r["outcome"] != "diverged"]


def _longest(path: Path) -> list[dict]:
    """A length scan's (collapse_map/length_*.csv) probes at its longest length that did not diverge."""
    from figures.collapse_map import read_rows

    rows = read_rows(path)
    longest = max(r["epochs"] for r in rows)
    return [r for r in rows if r["epochs"] == longest and r["outcome"] != "diverged"]


def redraw(out_dir: Path, figures_dir: Path = FIGURES_DIR) -> list[Path]:
    """`ssldyn figures` recipe: out_dir/ladder/ladder.png from figures_dir/ladder/r1.csv (required),
    r2.csv and figures_dir/collapse_map/observables_6ep.csv (each panel left out if its file is absent)."""
    from analysis.ladder import RELATIVE_FLOOR, with_relative_modes
    from deep.ladder.runner import read_rows

    data = Path(figures_dir) / "ladder"
    r1 = data / "r1.csv"
    if not r1.is_file():
        raise ValueError(f"ladder figure: no R1 data at {r1}; make it with {R1_COMMAND}")
    panels = [("R1: linear network, squared-error loss (the theory's)",
               partial(draw_counts, rows=_main_rows(read_rows(r1)), staircase=_staircase(data / "r1_staircase.csv"),
                       predicted=True))]
    if (data / "r2.csv").is_file():
        panels.append(("R2: linear network, BYOL's cosine loss",
                       partial(draw_counts, rows=with_relative_modes(_main_rows(read_rows(data / "r2.csv"))),
                               staircase=_staircase(data / "r2_staircase.csv"), predicted=False,
                               ylabel=f"surviving directions of W (σ² ≥ {RELATIVE_FLOOR:g}·σ₁²)")))
    observables = Path(figures_dir) / "collapse_map" / "observables_6ep.csv"  # the remade map's probe length
    l2 = data / "r3_l2.csv"  # the collapse map's scan with --loss l2 (its observables.csv)
    lengths = [Path(figures_dir) / "collapse_map" / f"length_{p}.csv" for p in ("linear", "mlp")]
    if observables.is_file():
        panels.append(("R3: ResNet-18 BYOL (collapse-map probes)",
                       partial(draw_rank, rows=_probes(observables), l2_rows=_probes(l2) if l2.is_file() else [],
                               long_rows=[r for f in lengths if f.is_file() for r in _longest(f)])))
    target = Path(out_dir) / "ladder"
    target.mkdir(parents=True, exist_ok=True)
    return [draw(panels, target / "ladder.png")]
