"""Figure recipes for the linear model (paper Figs. 3–5, thesis Fig. 3.2). Each writes PNG + CSV.

Colours follow the paper: stable fixed points red, unstable green, the parabola s = p²/α_p dashed,
the collapse basin shaded.
"""
import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from linear_dynamics.eigen_ode import integrate_eigen
from linear_dynamics.fixed_points import eta_critical, p_roots, parabola_velocity, regime
from linear_dynamics.matrix_model import simulate_flow
from linear_dynamics.params import EigenParams, LinearConfig
from linear_dynamics.phase import phase_portrait

DPI = 150
STABLE, UNSTABLE, BASIN = "#d62728", "#2ca02c", "#f7d4d0"


def _save(fig: Figure, out_dir: Path, name: str) -> Path:
    """PNG at DPI, reduced to a 256-colour palette: line art loses nothing visible and the file
    shrinks several-fold, which keeps the committed figures small."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    path = Path(out_dir) / f"{name}.png"
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path


def _write_csv(out_dir: Path, name: str, header: list[str], rows) -> Path:
    path = Path(out_dir) / f"{name}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([f"{v:.6g}" if isinstance(v, float) else v for v in row] for row in rows)
    return path


def _legend_handles():
    return [Patch(color=BASIN, label="collapse basin"),
            Line2D([], [], color="k", ls="--", label=r"parabola $s = p^2/\alpha_p$"),
            Line2D([], [], color=STABLE, marker="o", ls="", label="stable (point / line of points)"),
            Line2D([], [], color=UNSTABLE, marker="o", ls="", label="unstable")]


def draw_phase_portraits(out_dir: Path, etas=(0.0, 0.01, 1.0), alpha_p: float = 1.0, sigma2: float = 0.0,
                         tau: float = 1.0, name: str = "phase_portraits") -> list[Path]:
    """(p, s) phase portraits at fixed τ, one panel per η (paper Fig. 3)."""
    portraits = [phase_portrait(eta, alpha_p, sigma2, tau) for eta in etas]
    fig = Figure(figsize=(3.6 * len(etas), 3.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(etas), sharey=True))
    k = 1 + sigma2
    for ax, ph in zip(axes, portraits):
        eta = ph.params.eta
        ax.contourf(ph.basin_p, ph.basin_s, ph.collapses.astype(float), levels=[0.5, 1.5], colors=[BASIN])
        ax.streamplot(ph.p, ph.s, ph.dp, ph.ds, color="0.5", density=1.0, linewidth=0.6, arrowsize=0.7)
        curve = np.linspace(ph.p[0], ph.p[-1], 300)
        ax.plot(curve, curve**2 / alpha_p, "k--", lw=1.2)
        if eta == 0:  # two lines of fixed points, coloured by whether they attract transversally
            left, right = ph.p[0], ph.p[-1]
            ax.plot([left, 0], [0, 0], color=STABLE, lw=3, solid_capstyle="butt")
            ax.plot([0, tau / k], [0, 0], color=UNSTABLE, lw=3, solid_capstyle="butt")
            ax.plot([tau / k, right], [0, 0], color=STABLE, lw=3, solid_capstyle="butt")
            ax.plot([tau / k, tau / k], [0, ph.s[-1]], color=STABLE, lw=3)
        for point in ph.report.fixed_points:  # unstable ones smaller and on top: p₋ sits close to the origin
            ax.plot(point.p, point.s, "o", ms=9 if point.stable else 5, color=STABLE if point.stable else UNSTABLE,
                    mec="k", mew=0.6, clip_on=False, zorder=5 if point.stable else 6)
        ax.set_xlim(ph.p[0], ph.p[-1])
        ax.set_ylim(ph.s[0], ph.s[-1])
        ax.set_title(f"η = {eta:g}  ({regime(eta, tau, sigma2)})", fontsize=10)
        ax.set_xlabel("p  (eigenvalue of $W_p$)")
    axes[0].set_ylabel("s  (eigenvalue of $F$)")
    fig.suptitle(f"Eqs. 11–12 at τ = {tau:g}, $\\alpha_p$ = {alpha_p:g}, σ² = {sigma2:g}  (η* = {eta_critical(tau, sigma2):g})",
                 fontsize=10)
    fig.legend(handles=_legend_handles(), loc="outside lower center", ncol=4, fontsize=8, frameon=False)

    field_rows, basin_rows = [], []
    for ph in portraits:
        P, S = np.meshgrid(ph.p, ph.s)
        field_rows += [[ph.params.eta, *map(float, row)] for row in zip(P.ravel(), S.ravel(), ph.dp.ravel(), ph.ds.ravel())]
        BP, BS = np.meshgrid(ph.basin_p, ph.basin_s)
        basin_rows += [[ph.params.eta, float(p), float(s), int(c)]
                       for p, s, c in zip(BP.ravel(), BS.ravel(), ph.collapses.ravel())]
    point_rows = [[ph.params.eta, fp.name, fp.p, fp.s, fp.stable, *fp.eigenvalues]
                  for ph in portraits for fp in ph.report.fixed_points]
    return [_save(fig, out_dir, name),
            _write_csv(out_dir, name, ["eta", "p", "s", "dp_dt", "ds_dt"], field_rows),
            _write_csv(out_dir, f"{name}_basin", ["eta", "p0", "s0", "collapses"], basin_rows),
            _write_csv(out_dir, f"{name}_fixed_points", ["eta", "name", "p", "s", "stable", "eigenvalue_1", "eigenvalue_2"],
                       point_rows)]


def phase_portraits(out_dir: Path) -> list[Path]:
    """The three regimes at τ = 1, α_p = 1, σ² = 0 (η* = 0.25): η = 0, 0.01, 1."""
    return draw_phase_portraits(out_dir)


def parabola_velocity_figure(out_dir: Path, etas=(0.0, 0.1, 0.4), alpha_p: float = 1.0, sigma2: float = 0.0,
                             tau: float = 1.0) -> list[Path]:
    """dp/dt on the parabola s = p²/α_p against p, one panel per regime (paper Fig. 4).

    The moderate η is 0.1 rather than 0.01 so that p₋ stands clear of the origin at this scale.
    Fixed points are coloured by the sign of d(dp/dt)/dp there, i.e. the stability of the 1-D flow the
    parabola carries once weight decay has erased the initial offset c of Eq. 14; at η = 0 the origin
    is only semi-stable (slope 0) and drawn as unstable.
    """
    p = np.linspace(-0.2, 1.2, 561)
    k = 1 + sigma2
    fig = Figure(figsize=(10.5, 3.3), layout="constrained")
    axes = fig.subplots(1, len(etas), sharey=True)
    rows = []
    for ax, eta in zip(np.atleast_1d(axes), etas):
        velocity = parabola_velocity(p, alpha_p, eta, sigma2, tau)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.plot(p, velocity, color="#1f77b4", lw=1.6)
        rows += [[eta, float(x), float(v)] for x, v in zip(p, velocity)]
        roots = [0.0, tau / k] if eta == 0 else [0.0, *(p_roots(eta, tau, sigma2) or ())]
        for root in roots:
            slope = 2 * root * tau - 3 * k * root**2 - eta  # d/dp of p²(τ − kp) − ηp
            ax.plot(root, 0, "o", ms=7, color=STABLE if slope < 0 else UNSTABLE, mec="k", mew=0.6, zorder=5)
            ax.annotate(f"{root:.3g}", (root, 0), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
        ax.set_title(f"η = {eta:g}  ({regime(eta, tau, sigma2)})", fontsize=10)
        ax.set_xlabel(r"p  (on the parabola $s = p^2/\alpha_p$)")
    np.atleast_1d(axes)[0].set_ylabel("dp/dt")
    fig.suptitle(f"dp/dt = p²(τ − (1+σ²)p) − ηp at τ = {tau:g}, $\\alpha_p$ = {alpha_p:g}, σ² = {sigma2:g} "
                 f"(η* = {eta_critical(tau, sigma2):g}); red stable, green unstable", fontsize=10)
    return [_save(fig, out_dir, "parabola_velocity"),
            _write_csv(out_dir, "parabola_velocity", ["eta", "p", "dp_dt"], rows)]


def eigen_time_courses(out_dir: Path) -> list[Path]:
    """p(t), s(t), τ(t) from Eqs. 11–13: fixed τ = 1 for several η (top), EMA for several β (bottom)."""
    alpha_p, sigma2, p0, s0, t_end = 1.0, 0.0, 0.05, 0.1, 60.0
    fig = Figure(figsize=(10.5, 5.6), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True)
    rows = []
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    for eta, colour in zip((0.0, 0.05, 0.2, 0.3), colours):
        traj = integrate_eigen(p0, s0, EigenParams(alpha_p, eta, sigma2, tau=1.0), t_end)
        label = f"η = {eta:g}"
        axes[0, 0].plot(traj.t, traj.p[:, 0], color=colour, label=label)
        axes[0, 1].plot(traj.t, traj.s[:, 0], color=colour, label=label)
        offset = np.abs(traj.s[:, 0] - traj.p[:, 0] ** 2 / alpha_p)
        axes[0, 2].semilogy(traj.t, offset, color=colour, label=label)
        rows += [["fixed-tau", eta, "", float(t), float(p), float(s), float(tau)]
                 for t, p, s, tau in zip(traj.t, traj.p[:, 0], traj.s[:, 0], traj.tau[:, 0])]
    eta = 0.05
    for beta, colour in zip((0.05, 0.2, 1.0, 5.0), colours):
        traj = integrate_eigen(p0, s0, EigenParams(alpha_p, eta, sigma2, beta=beta), t_end, tau0=1.0)
        label = f"β = {beta:g}"
        for ax, values in zip(axes[1], (traj.p, traj.s, traj.tau)):
            ax.plot(traj.t, values[:, 0], color=colour, label=label)
        rows += [["ema", eta, beta, float(t), float(p), float(s), float(tau)]
                 for t, p, s, tau in zip(traj.t, traj.p[:, 0], traj.s[:, 0], traj.tau[:, 0])]
    axes[0, 0].set_ylabel("p(t)")
    axes[0, 1].set_ylabel("s(t)")
    axes[0, 2].set_ylabel(r"$|s - p^2/\alpha_p|$  (Eq. 14: $\propto e^{-2\eta t}$)")
    axes[0, 2].set_ylim(1e-12, 1)
    axes[1, 0].set_ylabel("p(t)")
    axes[1, 1].set_ylabel("s(t)")
    axes[1, 2].set_ylabel("τ(t)")
    axes[0, 0].set_title("fixed τ = 1 (SimSiam), η* = 0.25", fontsize=9, loc="left")
    axes[1, 0].set_title(f"EMA target (BYOL), η = {eta:g}, τ(0) = 1", fontsize=9, loc="left")
    for ax in axes[1]:
        ax.set_xlabel("t")
    for ax in axes[:, 0]:
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"Eqs. 11–13 from p(0) = {p0:g}, s(0) = {s0:g}, $\\alpha_p$ = {alpha_p:g}, σ² = {sigma2:g}", fontsize=10)
    return [_save(fig, out_dir, "eigen_time_courses"),
            _write_csv(out_dir, "eigen_time_courses", ["setting", "eta", "beta", "t", "p", "s", "tau"], rows)]


MATRIX_VARIANTS = {
    "SimSiam (stop-grad + predictor)": {},
    "BYOL (EMA β = 0.5)": {"beta": 0.5},
    "no stop-gradient": {"stop_grad": False},
    "no predictor": {"predictor": False},
}


def matrix_model_curves(out_dir: Path, lr: float = 0.01, batch: int = 128) -> list[Path]:
    """‖W‖, asymmetry of W_p and the relative commutator ‖[F, W_p]‖ over time for four variants of the
    matrix model, from the gradient flow (solid) and from real minibatch SGD (dashed)."""
    from linear_dynamics.sgd import simulate_sgd

    base = LinearConfig()
    fig = Figure(figsize=(11, 3.9), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    rows = []
    colours = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"]
    for (label, changes), colour in zip(MATRIX_VARIANTS.items(), colours):
        config = replace(base, **changes)
        for run, style in ((simulate_flow(config), "-"), (simulate_sgd(config, batch=batch, lr=lr), "--")):
            series = (run.W_norm, run.asymmetry, run.commutator)
            for ax, values in zip(axes, series):
                ax.plot(run.t, values, style, color=colour, lw=1.4 if style == "-" else 1.1,
                        label=label if style == "-" else None)
            rows += [[label, run.method, float(t), *map(float, values)] for t, *values in zip(run.t, *series)]
    axes[0].set_yscale("log")
    axes[0].set_ylim(1e-6, 10)
    axes[0].set_ylabel(r"$\|W\|_F$")
    axes[1].set_ylabel(r"asymmetry $\|W_p - W_p^\top\| / \|W_p\|$")
    axes[2].set_ylabel(r"commutator $\|[F, W_p]\| / (\|F\|\,\|W_p\|)$")
    for ax in axes:
        ax.set_xlabel("t  (SGD: steps × lr)")
    handles = [Line2D([], [], color=c, label=label) for label, c in zip(MATRIX_VARIANTS, colours)]
    handles += [Line2D([], [], color="k", ls="-", label="gradient flow"),
                Line2D([], [], color="k", ls="--", label=f"SGD (batch {batch}, lr {lr:g})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle(f"Matrix model (Eqs. 2–4): n1 = {base.n1}, n2 = {base.n2}, η = {base.eta:g}, $\\alpha_p$ = {base.alpha_p:g}, "
                 f"σ² = {base.sigma2:g}", fontsize=10)
    return [_save(fig, out_dir, "matrix_model"),
            _write_csv(out_dir, "matrix_model", ["variant", "method", "t", "W_norm", "asymmetry", "commutator"], rows)]
