"""Speed and accuracy of the vectorised eigen-ODE solver against scipy's solve_ivp, one call per mode.

Integrates N random (p0, s0) pairs of Eqs. 11–12 (τ = 1, α_p = 1, η = 0.01, σ² = 0) to t = 100 in
one `integrate_eigen` call (which also decides each mode's fate), then integrates a random sample
of them one by one with `scipy.integrate.solve_ivp` (RK45: the same Dormand–Prince 5(4) pair, the
same tolerances, on Eqs. 11–12 as written) and scales that time to N. Accuracy of both is measured
on the sample against DOP853 at rtol 1e-13, atol 1e-30 (untimed); RK45's absolute tolerance loses
the modes that slide along s ≈ 0, which `integrate_eigen` follows in ln s. Last line of output: one
JSON object.

    python benchmarks/eigen_ode.py [--n 10000] [--sample 200] [--t-end 100] [--seed 0]
"""
import json
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

from linear_dynamics.eigen_ode import eigen_rhs, integrate_eigen
from linear_dynamics.params import EigenParams
from ssldyn.args import count, positive_float, seed_number
from ssldyn.errors import Parser, report_errors

RTOL, ATOL = 1e-10, 1e-12


def main() -> None:
    parser = Parser(prog="python benchmarks/eigen_ode.py", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=count(10**7), default=10_000)
    parser.add_argument("--sample", type=count(10**6), default=200)
    parser.add_argument("--t-end", type=positive_float, default=100.0)
    parser.add_argument("--seed", type=seed_number, default=0)
    args = parser.parse_args()

    params = EigenParams(alpha_p=1.0, eta=0.01, sigma2=0.0, tau=1.0)
    rng = np.random.default_rng(args.seed)
    p0 = rng.uniform(-1.0, 2.0, args.n)
    s0 = rng.uniform(0.0, 2.0, args.n)

    start = time.perf_counter()
    traj = integrate_eigen(p0, s0, params, args.t_end, n_save=2, rtol=RTOL, atol=ATOL)
    vectorised_s = time.perf_counter() - start
    print(f"vectorised: {args.n} modes to t = {args.t_end:g} in {vectorised_s:.3f} s", flush=True)

    sample = rng.choice(args.n, size=min(args.sample, args.n), replace=False)
    reference = np.empty((sample.size, 2))
    start = time.perf_counter()
    for row, j in enumerate(sample):
        sol = solve_ivp(lambda _, y: eigen_rhs(y, params), (0.0, args.t_end), [p0[j], s0[j]],
                        method="RK45", rtol=RTOL, atol=ATOL)
        reference[row] = sol.y[:, -1]
    loop_s = (time.perf_counter() - start) * args.n / sample.size
    print(f"solve_ivp loop: {sample.size} modes timed, scaled to {args.n}: {loop_s:.1f} s", flush=True)

    exact = np.array([solve_ivp(lambda _, y: eigen_rhs(y, params), (0.0, args.t_end), [p0[j], s0[j]],
                                method="DOP853", rtol=1e-13, atol=1e-30).y[:, -1] for j in sample])
    ours = np.stack([traj.p[-1, sample], traj.s[-1, sample]], axis=1)
    print(json.dumps({"n": args.n, "vectorised_s": round(vectorised_s, 4), "solve_ivp_loop_s": round(loop_s, 2),
                      "speedup_vs_solve_ivp_loop": round(loop_s / vectorised_s, 1),
                      "max_abs_error": float(np.abs(ours - exact).max()),
                      "solve_ivp_max_abs_error": float(np.abs(reference - exact).max())}))


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/eigen_ode.py", main))
