"""The collapse threshold of the matrix model under real minibatch SGD (issue 22, item 5).

For each learning rate lr, batch size B and seed, the weight decay η at which SGD collapses is
bracketed by bisection: SimSiam (Eqs. 2–4 with W_a ≡ W) at the defaults of `LinearConfig` (n1 = 16,
n2 = 8, α_p = 1, σ² = 0.5, so η* = 1/(4(1+σ²)) = 1/6, the gradient flow's threshold), trained by
`sgd.sgd_states` for HORIZON units of SGD time (steps·lr). A run counts as collapsed when
‖W‖_F < COLLAPSED_BELOW·‖W(0)‖_F by then (it stops there; at p₊, ‖W‖_F stays near 0.3–1, far above).
This verdict is SGD's own: the flow is not continued. The gradient flow is bracketed by the same rule
and horizon (`flow_collapses`), and again at LONG_HORIZON with one batch size: near η* the flow passes
the saddle-node's bottleneck in ≈ π/(η*√δ) at η = (1 + δ)η*, so a horizon alone moves the observed
threshold up. Measured (docs/theory.md): SGD's threshold lies above the flow's at the same horizon, by
more at larger lr and smaller batch, and less at the longer horizon.

    python -m figures.sgd_threshold            # measures (about 5 min), writes sgd_threshold.csv, draws
    ssldyn figures --only sgd_threshold        # redraws sgd_threshold.png from the committed CSV
"""
import argparse
import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from figures.theory import _save, _write_csv
from linear_dynamics.matrix_flow import flow_rhs, integrate_flow
from linear_dynamics.matrix_model import initial_state
from linear_dynamics.params import LinearConfig

FIGURES_DIR = Path(__file__).resolve().parent
NAME = "sgd_threshold"
ETA_STAR = 1 / 6  # 1/(4(1+σ²)) at the default σ² = 0.5, τ = 1
HORIZON = 200.0
LONG_HORIZON = 800.0  # measured again at batch LONG_BATCH only: how the drift depends on the horizon
LONG_BATCH = 32
COLLAPSED_BELOW = 1e-3
LRS = (0.05, 0.1, 0.2, 0.3)
BATCHES = (8, 32, 128)
SEEDS = (0, 1, 2)
BRACKET = (0.5, 2.0)  # × η*: where the bisection starts
HALVINGS = 7  # bracket width 1.5η*/2⁷ ≈ 1.2% of η*
HEADER = ["method", "lr", "batch", "seed", "eta_survived", "eta_collapsed", "diverged", "horizon"]


def sgd_collapses(eta: float, lr: float, batch: int, seed: int, horizon: float) -> bool:
    """Whether SGD at (η, lr, B, seed) brings ‖W‖_F below COLLAPSED_BELOW·‖W(0)‖_F within `horizon`."""
    from linear_dynamics.sgd import sgd_states

    config = LinearConfig(eta=eta, seed=seed, t_end=horizon)
    start = np.linalg.norm(initial_state(config)[0])
    states = sgd_states(config, batch=batch, lr=lr, n_save=401, stop_below=COLLAPSED_BELOW * start)
    if states.diverged_at is not None:
        raise FloatingPointError(f"SGD diverged at lr = {lr:g}, batch = {batch}, seed = {seed}: {states.why}")
    return bool(np.linalg.norm(states.W[-1]) < COLLAPSED_BELOW * start)


def flow_collapses(eta: float, seed: int, horizon: float) -> bool:
    """The same question for the gradient flow (Eqs. 2–4, `matrix_flow.integrate_flow`): the limit lr → 0
    at a fixed horizon, which separates the horizon's share of the drift from SGD's."""
    config = LinearConfig(eta=eta, seed=seed, t_end=horizon)
    state = initial_state(config)
    ys, _ = integrate_flow(config, state, 0.0, np.array([horizon]))
    W = flow_rhs(config, state)[2](ys[-1])[0]
    return bool(np.linalg.norm(W) < COLLAPSED_BELOW * np.linalg.norm(state[0]))


def bracket(collapses) -> tuple[float, float]:
    """(η survived, η collapsed) for collapses(η), HALVINGS halvings apart from BRACKET·η*; an end that
    does not behave as assumed is returned as the bracket with the other side NaN."""
    low, high = BRACKET[0] * ETA_STAR, BRACKET[1] * ETA_STAR
    if collapses(low):
        return float("nan"), low
    if not collapses(high):
        return high, float("nan")
    for _ in range(HALVINGS):
        middle = (low + high) / 2
        low, high = (low, middle) if collapses(middle) else (middle, high)
    return low, high


def measure(out_dir: Path = FIGURES_DIR) -> Path:
    """Bracket the threshold for the flow and for SGD at each (lr, B), each seed; writes NAME.csv."""
    rows = []

    def add(method, lr, batch, seed, horizon, collapses):
        try:
            low, high = bracket(collapses)
        except FloatingPointError as err:
            rows.append([method, lr, batch, seed, float("nan"), float("nan"), 1, horizon])
            print(err, flush=True)
        else:
            rows.append([method, lr, batch, seed, low, high, 0, horizon])
            print(f"{method} lr {lr:g} batch {batch} seed {seed} horizon {horizon:g}: survived at "
                  f"{low / ETA_STAR:.4f}η*, collapsed at {high / ETA_STAR:.4f}η*", flush=True)
        _write_csv(out_dir, NAME, HEADER, rows)  # partial results survive an interruption

    for horizon, batches in ((HORIZON, BATCHES), (LONG_HORIZON, (LONG_BATCH,))):
        for seed in SEEDS:
            add("flow", 0.0, 0, seed, horizon, lambda eta: flow_collapses(eta, seed, horizon))
        for batch in batches:
            for lr in LRS:
                for seed in SEEDS:
                    add("sgd", lr, batch, seed, horizon, lambda eta: sgd_collapses(eta, lr, batch, seed, horizon))
    return Path(out_dir) / f"{NAME}.csv"


def _drift(r: dict) -> tuple[float, float, float]:
    """(low, high, midpoint) of one bracket as (η − η*)/η*."""
    low, high = r["eta_survived"] / ETA_STAR - 1, r["eta_collapsed"] / ETA_STAR - 1
    return low, high, (low + high) / 2


def redraw(out_dir: Path, data_dir: Path = FIGURES_DIR) -> list[Path]:
    """The threshold's relative drift (η_c − η*)/η* against lr (left) and lr/B (right), one colour per
    batch size: each seed's bracket (a bar) and the mean of the seeds' midpoints (a line), at the main
    horizon (solid) and the long one (dashed); the gradient flow's brackets at the same horizons and rule
    (grey bands: the horizon's share of the drift)."""
    with (Path(data_dir) / f"{NAME}.csv").open(newline="") as handle:
        rows = [{key: value if key == "method" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]
    horizons = sorted({r["horizon"] for r in rows})
    fig = Figure(figsize=(10.5, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax in axes:
        ax.axhline(0.0, color="k", lw=0.8, ls=":", label="η* (gradient flow, t → ∞)")
        for horizon, grey in zip(horizons, ("0.8", "0.9")):
            flow = [_drift(r) for r in rows if r["method"] == "flow" and r["horizon"] == horizon]
            ax.axhspan(min(f[0] for f in flow), max(f[1] for f in flow), color=grey, zorder=0,
                       label=f"gradient flow, horizon {horizon:g}")
        ax.set_xscale("log")
    sgd = [r for r in rows if r["method"] == "sgd" and not r["diverged"]]
    colours = dict(zip(sorted({r["batch"] for r in sgd}), ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")))
    for (batch, colour), (horizon, style) in ((bc, hs) for bc in colours.items() for hs in zip(horizons, ("-", "--"))):
        mine = [r for r in sgd if r["batch"] == batch and r["horizon"] == horizon]
        lrs = sorted({r["lr"] for r in mine})
        for ax, scale in zip(axes, (1.0, 1 / batch)):
            means = []
            for lr in lrs:
                at = [_drift(r) for r in mine if r["lr"] == lr]
                means.append(np.mean([a[2] for a in at]))
                for k, (low, high, _) in enumerate(at):
                    x = lr * scale * (1 + 0.04 * (k - (len(at) - 1) / 2))
                    ax.plot([x, x], [low, high], color=colour, lw=2, alpha=0.5)
            if lrs:
                ax.plot([lr * scale for lr in lrs], means, "o" + style, color=colour, ms=4,
                        label=f"SGD, batch {int(batch)}, horizon {horizon:g}")
    diverged = sorted({(r["lr"], int(r["batch"])) for r in rows if r["method"] == "sgd" and r["diverged"]})
    if diverged:
        axes[0].text(0.02, 0.97, "diverged (no threshold): " + ", ".join(f"lr {lr:g} batch {b}" for lr, b in diverged),
                     transform=axes[0].transAxes, fontsize=7, va="top")
    axes[0].set_xlabel("learning rate lr")
    axes[1].set_xlabel("lr / batch  (minibatch noise per unit of SGD time)")
    axes[0].set_ylabel(r"threshold drift $(\eta_c - \eta^*)/\eta^*$")
    axes[1].legend(fontsize=7, frameon=False, loc="upper left")
    fig.suptitle(f"Matrix model under minibatch SGD (SimSiam, n1 = 16, n2 = 8, α_p = 1, σ² = 0.5, η* = 1/6): collapse "
                 f"threshold by bisection, each seed's bracket (bars) and the seeds' mean;\ncollapsed = ‖W‖ < "
                 f"{COLLAPSED_BELOW:g}‖W(0)‖ within the horizon (SGD time steps·lr)", fontsize=8)
    return [_save(fig, out_dir, NAME)]


def main() -> None:
    parser = argparse.ArgumentParser(description="measure the SGD collapse threshold and draw it (minutes)")
    parser.add_argument("--out", type=Path, default=FIGURES_DIR)
    args = parser.parse_args()
    measure(args.out)
    print("\n".join(map(str, redraw(args.out, args.out))))


if __name__ == "__main__":
    main()
