"""Theory of the linear BYOL / SimSiam model (Tian, Chen & Ganguli 2021; SPEC §2).

numpy / scipy / sympy only: importing this package never imports torch (only `linear_dynamics.sgd`
does, inside its functions).

Public API (stable; import from the submodules or from here):

params
    EigenParams(alpha_p, eta, sigma2=0.0, tau=None, beta=None)   exactly one of tau / beta
    LinearConfig(n1=16, n2=8, eta=0.02, alpha_p=1.0, beta=None, sigma2=0.5, stop_grad=True,
                 predictor=True, symmetric_predictor=False, t_end=40.0, seed=0, init_scale_p=0.3)
    every parameter and initial value at most MAX_VALUE (1e6) in size; LinearConfig: n1·n2 and n2² at
    most MAX_MATRIX_ENTRIES (128²), t_end at most MAX_FLOW_TIME (1e4)
fixed_points  (Eqs. 11–12 at fixed τ)
    eta_critical(tau=1.0, sigma2=0.0) -> float                    η* = τ²/(4(1+σ²))
    regime(eta, tau=1.0, sigma2=0.0) -> 'no-weight-decay' | 'moderate' | 'too-large'
    p_roots(eta, tau=1.0, sigma2=0.0) -> (p₋, p₊) | None
    fixed_points(alpha_p, eta, sigma2=0.0, tau=1.0) -> FixedPointReport
        .regime .eta_critical .fixed_points (FixedPoint: name, p, s, eigenvalues, stable)
        .fixed_lines (η = 0 only; FixedLine: name, p, s, attracting_where) .to_dict()
    jacobian(p, s, alpha_p, eta, sigma2=0.0, tau=1.0) -> 2×2 array
    ema_jacobian(p, w, a, alpha_p, eta, sigma2, beta) -> 3×3 array   EMA, coordinates of ema_mode_rhs
    parabola_velocity(p, alpha_p, eta, sigma2=0.0, tau=1.0)       dp/dt on s = p²/α_p
    collapses_closed_form(p0, s0, alpha_p, eta, sigma2=0.0, tau=1.0) -> bool array
        (η = 0 anywhere, η > η*, or on the parabola to a relative 1e-12; ValueError elsewhere)
eigen_ode  (Eqs. 11–14)
    eigen_rhs(state, params)                                      state rows (p, s[, τ])
    log_s_rhs(state, params), log_s_jacobian   fixed τ in the integrator's coordinates (p, ln s)
    ema_mode_rhs(state, params), ema_mode_jacobian   EMA in regular coordinates (p, w, a): s = w², τ = a/w
    integrate_eigen(p0, s0, params, t_end, tau0=None, n_save=201, rtol=1e-10, atol=1e-12,
                    collapse_tol=1e-6) -> EigenTrajectories
        .t (T,)  .p .s .tau (T, n)  .final {'p','s','tau'} (state at t_end; with EMA τ is NaN where s ≤ 1e-6)
        .verdicts  .fixed_point  .t_decided (n,)  .basis  .collapsed (n,) bool    each mode's fate (see fate)
    parabola_offset(t, p0, s0, alpha_p, eta)                       c e^{−2ηt} of Eq. 14
batched_rk
    solve_batched(rhs, y0, t_save, rtol, atol, max_iterations, jacobian=None)   Dormand–Prince per column;
        columns that turn stiff (Hairer's test) are finished by Radau
fate  (which attractor each mode converges to)
    verdicts 'collapsed' | 'non-collapsed' (decided: in a region of a stable fixed point / line that the
    mode does not leave) | 'undecided'; basis 'theorem' | 'numerical'; t_decided: from when
    decide_fates(t, states, rhs, params, rtol, atol, jacobian=None) -> Fate(.verdicts .fixed_point .t_decided .basis)
    fate_time_scale(params)   1 / slowest Jacobian decay rate at the stable fixed points
    check_times(t_end, params)   checks past t_end: a tenth of the fastest time scale, then 10% further each
    classifier(params), regions(params)   states -> (attractor names, basis)
    origin_box(params) -> (a, b)   exact trapping box |p| ≤ a, s ≤ b at a fixed τ, η > 0 (no p±, no η*)
ema_lyapunov  (the EMA mode's p₊ neighbourhood, proved)
    ema_plus_region(eta, sigma2, beta) -> EmaPlusRegion | None   a Lyapunov ellipsoid around p₊ (None next to η*)
modes  (anisotropic inputs, commuting X and X'; issue 21)
    mode_thresholds(lam, nu, tau=1.0) -> η_j* = τ²λ_j²/(4(λ_j+ν_j))
    surviving_modes(eta, lam, nu, tau=1.0) -> #{j : η < η_j*}   the staircase
    isotropic_mode(lam, nu, alpha_p, eta, tau=1.0, beta=None) -> (EigenParams, time scale λ)
matrix_flow  (Eqs. 2–4)
    matrix_rhs(W, W_p, W_a, config) -> (dW, dW_p, dW_a);  matrix_jacobian(W, W_p, W_a, config)
    integrate_flow(config, state, t0, t_eval) -> (packed states, evaluations)   DOP853, then Radau if stiff
        (ValueError when Radau's dense Jacobian would exceed IMPLICIT_MEMORY_BUDGET)
matrix_model  (runs of Eqs. 2–4, Thms 1–3)
    initial_state(config) -> (W, W_p, W_a)
    simulate_flow(config, n_save=201, rtol=1e-10, atol=1e-20) -> LinearRun (with its fate)
    balance(W, W_p, alpha_p)                       W Wᵀ − W_pᵀW_p/α_p (Thm 1: = e^{−2ηt} C)
    no_stopgrad_hessian(W_p, eta, X, X_aug)        H of Thm 2 (column-major vec)
    alignment_K(F, W_p, alpha_p, eta, sigma2, tau) K of Thm 3
    symmetric_predictor_fixed_point(F, alpha_p, eta, sigma2, tau)
matrix_fate  (the matrix model's verdicts; rules in its docstring and docs/theory.md)
    MatrixFate(.verdict .basis .rule .t_decided .modes_at_p_plus)
    flow_fate(run), sgd_fate(run, lr, ...), global_certificate, state_certificate, origin_box, sgd_curvature
sgd  (torch, imported lazily)
    simulate_sgd(config, batch=128, lr=0.01, steps=None, n_save=201) -> LinearRun ('diverged' if the weights blow up)
    sgd_states(config, batch, lr, steps, n_save, stop_below=None) -> SGDStates (no verdict)
run
    LinearRun: .t .W .W_p .W_a (time-major arrays) .method ('flow'|'sgd') .config .fate
        .F .W_norm .asymmetry .commutator (arrays over t)  .verdict  .collapsed  .final() -> dict
threshold  (H5)
    eigen_threshold(p0, s0, alpha_p, sigma2, tau, beta=None), matrix_threshold(config) -> Threshold
        .eta_threshold_observed .eta_critical .eta_low .eta_high .status .observations
    bisect_threshold(collapses, eta_critical, lo, hi, rel_tol=0.01)
phase
    phase_portrait(eta, alpha_p=1.0, sigma2=0.0, tau=1.0, p_range, s_range, n_grid=41, n_basin=81)
        -> PhasePortrait(.p .s .dp .ds  .basin_p .basin_s .collapses  .report)   collapses: the fate
"""
from linear_dynamics.eigen_ode import (COLLAPSE_TOL, EigenTrajectories, eigen_rhs, ema_mode_jacobian, ema_mode_rhs,
                                       integrate_eigen, log_s_jacobian, log_s_rhs, parabola_offset)
from linear_dynamics.fate import Fate, check_times, classifier, decide_fates, fate_time_scale, origin_box, regions
from linear_dynamics.fixed_points import (FixedLine, FixedPoint, FixedPointReport, collapses_closed_form,
                                          ema_jacobian, eta_critical, fixed_points, jacobian, p_roots,
                                          parabola_velocity, regime)
from linear_dynamics.matrix_fate import MatrixFate, flow_fate, sgd_curvature, sgd_fate
from linear_dynamics.matrix_flow import integrate_flow, matrix_jacobian, matrix_rhs
from linear_dynamics.modes import isotropic_mode, mode_thresholds, surviving_modes
from linear_dynamics.matrix_model import (alignment_K, balance, initial_state, no_stopgrad_hessian, simulate_flow,
                                          symmetric_predictor_fixed_point)
from linear_dynamics.params import EigenParams, LinearConfig
from linear_dynamics.phase import PhasePortrait, phase_portrait
from linear_dynamics.run import LinearRun
from linear_dynamics.threshold import Threshold, bisect_threshold, eigen_threshold, matrix_threshold

def simulate_sgd(*args, **kwargs):
    """`linear_dynamics.sgd.simulate_sgd`, imported on first use so that torch stays optional."""
    from linear_dynamics.sgd import simulate_sgd as run

    return run(*args, **kwargs)
