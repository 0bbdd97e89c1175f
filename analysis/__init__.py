"""Metrics and verdicts shared by the linear model and the deep runs (SPEC §4–5).

metrics      the only implementation of every metric: asymmetry, spectrum, eigenbasis,
             eigenspace_alignment, mean_alignment, relative_commutator, std_of_l2_normalized,
             effective_rank (numpy or torch in, floats / float64 arrays out)
trajectory   predictor_trajectory(W_ps, Fs, steps=None, epochs=None) -> PredictorTrajectory
             (Fig. 4.8 quantities per snapshot); snapshot_trajectory(snapshots)
theory       predict(alpha_p, eta, sigma2=0, *, tau=None, beta=None, p0=None, s0=None, tau0=None,
             t_end=None) -> Prediction (regime, eta_star, p_minus, p_plus, verdict(s));
             deep_to_linear(config, sigma2=0) -> DeepMapping
verdicts     Verdict; decay_outcome, symmetry_outcome, alignment_outcome, collapse_status, combine
             and the thresholds they use
rundir       load_run(path, need_snapshots=True) -> Run (config, epochs, steps, snapshots), checked
plots        predictor_panels(traj, out_dir, title, ...), collapse_curves(epochs, out_dir, title)
report       analyze_run(run_dir, sigma2=0) -> summary dict  (`ssldyn analyze`)
hypotheses   linear_verdicts(sgd=True), deep_verdicts(runs, sigma2=0), summarize(linear, deep)
             (`ssldyn hypotheses`)
"""
