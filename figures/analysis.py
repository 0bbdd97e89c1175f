"""Figure recipe: the thesis' Fig. 4.8 panels for the linear model, drawn by the function that draws
them for a deep run (analysis.plots.predictor_panels), from the matrix gradient flow (Eqs. 2–4)."""
from pathlib import Path

from analysis.linear_hypotheses import BASE
from analysis.plots import predictor_panels
from analysis.trajectory import predictor_trajectory
from linear_dynamics.matrix_model import simulate_flow


def linear_predictor_panels(out_dir: Path) -> list[Path]:
    """Spectra of F and W_p, per-eigenvector alignment and asymmetry over the flow of the default
    matrix model (the H3/H4 control run of `ssldyn hypotheses`)."""
    run = simulate_flow(BASE, n_save=11)
    traj = predictor_trajectory(run.W_p, run.F, steps=run.t)
    title = (f"Linear model, gradient flow: n1 = {BASE.n1}, n2 = {BASE.n2}, η = {BASE.eta:g}, "
             f"α_p = {BASE.alpha_p:g}, σ² = {BASE.sigma2:g}, SimSiam (τ ≡ 1)")
    return predictor_panels(traj, Path(out_dir), title, stem="linear_predictor", time_column="t",
                            time_label="t (flow time)")
