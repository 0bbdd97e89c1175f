"""Subcommands of `ssldyn` provided by the linear_dynamics package: fixed-points, eigen, linear.

Imports of numpy/scipy/torch happen inside the handlers so that `ssldyn --help` stays instant.
"""
from ssldyn.args import count, finite_float, nonnegative_float, positive_float, positive_int, seed_number
from ssldyn.output import emit


def _add_model_args(parser, eta_required: bool = True) -> None:
    parser.add_argument("--alpha-p", type=positive_float, default=1.0, help="predictor lr ratio α_p > 0 (default 1)")
    parser.add_argument("--eta", type=nonnegative_float, required=eta_required, default=None if eta_required else 0.02,
                        help="weight decay η >= 0")
    parser.add_argument("--sigma2", type=nonnegative_float, default=0.0, help="augmentation variance σ² >= 0 (default 0)")


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
    fp = subparsers.add_parser("fixed-points", help="fixed points of Eqs. 11-12, their stability, the regime and η*")
    _add_model_args(fp)
    fp.add_argument("--tau", type=nonnegative_float, default=1.0, help="target ratio τ >= 0 (default 1)")
    fp.add_argument("--json", action="store_true", help="print one JSON object")
    fp.set_defaults(func=fixed_points_command)

    eig = subparsers.add_parser(
        "eigen", help="integrate the eigenvalue ODEs (Eqs. 11-13) for one or many modes",
        description="Integrate Eqs. 11-13 to --t-end and report each mode's state there ('final') and its fate. "
                    "'verdict' is 'collapsed' or 'non-collapsed' once the mode is in a region of a stable fixed "
                    "point (or, at eta = 0, a fixed line) that it does not leave; modes not there by t_end are "
                    "integrated further, and are 'undecided' if they are still not there after 100 slow time scales "
                    "(e.g. on the saddle's stable manifold, or at eta = eta*). 'fixed_point' names the attractor "
                    "(as in `ssldyn fixed-points`), 't_decided' the time from which the verdict was certain "
                    "(may exceed t_end; null when undecided), 'basis' what it rests on: 'theorem' (an exact "
                    "trapping region, with --beta a Lyapunov ellipsoid around p+ verified over the sphere, or "
                    "the eta = 0 closed form) or 'numerical' (with --beta at eta = 0, a 1%% neighbourhood of the "
                    "line p = 1/(1+sigma2)). Next to eta* (with --beta) the proved region vanishes and modes "
                    "stay undecided. Stiff modes are integrated implicitly (Radau).")
    _add_model_args(eig)
    target = eig.add_mutually_exclusive_group()
    target.add_argument("--tau", type=nonnegative_float, help="fixed target ratio τ >= 0 (default 1 when --beta is absent)")
    target.add_argument("--beta", type=positive_float, help="EMA rate β > 0: τ follows Eq. 13")
    eig.add_argument("--tau0", type=nonnegative_float, help="initial τ with --beta (default 1)")
    eig.add_argument("--p0", type=finite_float, nargs="+", required=True, help="initial predictor eigenvalue(s)")
    eig.add_argument("--s0", type=nonnegative_float, nargs="+", required=True, help="initial eigenvalue(s) of F, >= 0")
    eig.add_argument("--t-end", type=positive_float, required=True, help="integration horizon > 0")
    eig.add_argument("--json", action="store_true", help="print one JSON object")
    eig.set_defaults(func=eigen_command)

    lin = subparsers.add_parser(
        "linear", help="the matrix model: gradient flow of Eqs. 2-4 or real minibatch SGD",
        description="Run the matrix model to --t-end and report the final norms and the verdict: 'collapsed' "
                    "(||W|| -> 0), 'non-collapsed', 'undecided' or, for SGD, 'diverged', with the certificate "
                    "('rule') it rests on, its 'basis' ('theorem' or 'numerical') and 't_decided' (the flow is "
                    "integrated past t_end until a certificate holds). A stiff flow too large for the implicit solver's "
                    "2 GB memory budget goes on explicitly while that is fast enough, else stops with one error line. "
                    "SGD is 'diverged' only when its own weights blow up. The rules are in docs/theory.md.")
    lin.add_argument("--n1", type=positive_int, default=16, help="input dimension (default 16)")
    lin.add_argument("--n2", type=positive_int, default=8, help="representation dimension (default 8)")
    lin.add_argument("--eta", type=nonnegative_float, default=0.02, help="weight decay η >= 0 (default 0.02)")
    lin.add_argument("--alpha-p", type=positive_float, default=1.0, help="predictor lr ratio α_p > 0 (default 1)")
    lin.add_argument("--beta", type=positive_float, help="EMA rate β > 0 (BYOL); absent: SimSiam, W_a = W")
    lin.add_argument("--sigma2", type=nonnegative_float, default=0.5, help="augmentation variance σ² >= 0 (default 0.5)")
    lin.add_argument("--t-end", type=positive_float, default=40.0, help="flow horizon > 0 (default 40); SGD: steps = t_end/lr")
    lin.add_argument("--seed", type=seed_number, default=0, help="seed of the initial weights and of the SGD samples")
    lin.add_argument("--no-stopgrad", action="store_true", help="let the gradient flow through the target branch")
    lin.add_argument("--no-predictor", action="store_true", help="fix W_p = I")
    lin.add_argument("--symmetric-predictor", action="store_true", help="keep W_p symmetric (assumption A3)")
    lin.add_argument("--sgd", action="store_true", help="run real minibatch SGD (torch autograd) instead of the flow")
    lin.add_argument("--batch", type=count(10**6), help="SGD batch size (default 128)")
    lin.add_argument("--lr", type=positive_float, help="SGD learning rate (default 0.01)")
    lin.add_argument("--steps", type=positive_int, help="SGD steps (default t_end/lr); SGD time is steps*lr")
    lin.add_argument("--json", action="store_true", help="print one JSON object")
    lin.set_defaults(func=linear_command)


def fixed_points_command(args) -> int:
    from linear_dynamics.fixed_points import fixed_points

    report = fixed_points(args.alpha_p, args.eta, args.sigma2, args.tau).to_dict()
    lines = [f"regime: {report['regime']}   eta* = {report['eta_critical']:.6g}"]
    for point in report["fixed_points"]:
        values = ", ".join(f"{v:.4g}" for v in point["eigenvalues"])
        lines.append(f"  {point['name']:>8}: p = {point['p']:.6g}, s = {point['s']:.6g}, "
                     f"{'stable' if point['stable'] else 'unstable'} (Jacobian eigenvalues {values})")
    for line in report.get("fixed_lines", []):
        where = f"s = {line['s']:g}" if line["s"] is not None else f"p = {line['p']:.6g}"
        lines.append(f"  line {where} ({line['name']}): attracting where {line['attracting_where']}")
    emit(report, args.json, "\n".join(lines))
    return 0


def eigen_command(args) -> int:
    import numpy as np

    from linear_dynamics.eigen_ode import integrate_eigen
    from linear_dynamics.params import EigenParams

    if args.tau0 is not None and args.beta is None:
        raise ValueError("argument --tau0: only allowed with --beta (with a fixed --tau the ratio does not move)")
    if len(args.p0) != len(args.s0) and 1 not in (len(args.p0), len(args.s0)):
        raise ValueError(f"argument --s0: give one value or as many as --p0 ({len(args.p0)}), got {len(args.s0)}")
    if args.beta is not None and 0.0 in args.s0:
        raise ValueError("argument --s0: must be > 0 with --beta (tau = W_a/W is undefined where W = 0)")
    tau = None if args.beta is not None else (1.0 if args.tau is None else args.tau)
    params = EigenParams(args.alpha_p, args.eta, args.sigma2, tau=tau, beta=args.beta)
    # 101 saved times: t_decided is resolved to t_end/100 before t_end.
    traj = integrate_eigen(args.p0, args.s0, params, args.t_end, tau0=args.tau0, n_save=101)
    # With EMA, τ = W_a/W is undefined on a collapsed mode (null in JSON); t_decided is null when undecided.
    final = {key: [float(v) if np.isfinite(v) else None for v in values] for key, values in traj.final.items()}
    t_decided = [float(t) if np.isfinite(t) else None for t in traj.t_decided]
    per_mode = {"verdict": list(traj.verdicts), "fixed_point": list(traj.fixed_point), "t_decided": t_decided,
                "basis": list(traj.basis)}
    one = len(final["p"]) == 1
    result = {"final": {key: values[0] if one else values for key, values in final.items()},
              **{key: values[0] if one else values for key, values in per_mode.items()},
              "t_end": args.t_end}
    text = "\n".join(f"mode {j}: p = {p:.6g}, s = {s:.6g}, tau = {t if t is not None else float('nan'):.6g} -> {v}"
                     + (f" (fixed point {fp}, certain from t = {td:g}, {b})" if fp else " (no attractor region reached)")
                     for j, (p, s, t, v, fp, td, b) in enumerate(zip(final["p"], final["s"], final["tau"], traj.verdicts,
                                                                      traj.fixed_point, traj.t_decided, traj.basis)))
    emit(result, args.json, f"t_end = {args.t_end:g}\n{text}")
    return 0


def linear_command(args) -> int:
    from linear_dynamics.params import LinearConfig

    if args.no_stopgrad and args.beta is not None:
        raise ValueError("argument --beta: not allowed with --no-stopgrad (without stop-gradient the target branch is W itself)")
    if args.symmetric_predictor and args.no_predictor:
        raise ValueError("argument --symmetric-predictor: not allowed with --no-predictor")
    sgd_only = [f"--{name}" for name in ("steps", "batch", "lr") if getattr(args, name) is not None]
    if not args.sgd and sgd_only:
        raise ValueError(f"argument {'/'.join(sgd_only)}: only with --sgd (the flow has no steps, batch or lr)")
    args.batch = 128 if args.batch is None else args.batch
    args.lr = 0.01 if args.lr is None else args.lr
    config = LinearConfig(n1=args.n1, n2=args.n2, eta=args.eta, alpha_p=args.alpha_p, beta=args.beta,
                          sigma2=args.sigma2, stop_grad=not args.no_stopgrad, predictor=not args.no_predictor,
                          symmetric_predictor=args.symmetric_predictor, t_end=args.t_end, seed=args.seed)
    if args.sgd:
        from linear_dynamics.sgd import simulate_sgd

        if args.beta is not None and args.beta * args.lr > 1:
            raise ValueError(f"argument --lr: the EMA step beta*lr must be <= 1, got {args.beta * args.lr:g}")
        run = simulate_sgd(config, batch=args.batch, lr=args.lr, steps=args.steps)
    else:
        from linear_dynamics.matrix_model import simulate_flow

        run = simulate_flow(config)
    fate = run.fate.to_dict()
    result = {"final": run.final(), **fate, "method": run.method, "t_end": float(run.t[-1])}
    f = result["final"]
    when = "" if fate["t_decided"] is None else (f", at t = {fate['t_decided']:g}" if run.verdict == "diverged"
                                                  else f", certain from t = {fate['t_decided']:g}")
    text = (f"{run.method} to t = {run.t[-1]:g}: ||W|| {run.W_norm[0]:.4g} -> {f['W_norm']:.4g}, "
            f"asymmetry(W_p) {f['asymmetry']:.3g}, relative [F, W_p] {f['commutator']:.3g} -> {run.verdict}"
            f" ({fate['basis'] or 'no certificate'}{when})\n  rule: {fate['rule']}")
    emit(result, args.json, text)
    return 0
