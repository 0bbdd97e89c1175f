"""What each assumption of the R1 staircase costs, on the ladder's own moments (issue 21): the surviving
count at each weight decay from
  staircase            commuting moments, no basin, t → ∞ (`linear_dynamics.modes`);
  commuting, long      the population recursion with C̄ and Ā − C̄ made to commute (Ā − C̄ replaced by its
                       diagonal in C̄'s eigenbasis), from the runs' own initial W, W_p, for --long steps;
  real, long           the recursion with the measured (non-commuting) Ā, C̄, for --long steps;
  real, run length     the same for the runs' own steps (what `ssldyn ladder` writes as `population`).
Prints one JSON object. Reads the moments of a ladder (OUT/moments.npz of `ssldyn ladder`), or measures
them the same way (CIFAR-10, a few seconds) when the directory has none.

    python benchmarks/ladder_decomposition.py runs/ladder-r1 [--alpha-p 1] [--ema 0] [--seeds 3] [--long 40000]
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from ssldyn.args import count, positive_float, unit_interval  # noqa: E402
from ssldyn.errors import Parser, report_errors  # noqa: E402


def main(argv=None) -> int:
    from deep.ladder import rungs
    from deep.ladder.cli import DEFAULT_EPOCHS, DEFAULT_RANGE, DEFAULT_WDS
    from deep.ladder.runner import initial_weights
    from deep.view_covariance import mode_spectra
    from linear_dynamics.modes import surviving_modes
    from linear_dynamics.population import population_sgd, surviving_count

    parser = Parser(prog="python benchmarks/ladder_decomposition.py", description=__doc__.splitlines()[0])
    parser.add_argument("ladder", type=Path, help="a ladder directory (its moments.npz, else measured)")
    parser.add_argument("--alpha-p", type=positive_float, default=1.0)
    parser.add_argument("--ema", type=unit_interval, default=0.0)
    parser.add_argument("--seeds", type=count(1000), default=3)
    parser.add_argument("--long", type=count(10**7), default=40000, help="steps of the long recursions")
    parser.add_argument("--epochs", type=count(10**5), default=DEFAULT_EPOCHS)
    args = parser.parse_args(argv)
    from deep.ladder.runner import moments

    if not args.ladder.is_dir():
        raise ValueError(f"{args.ladder} is not a directory: give a ladder directory (`ssldyn ladder --out`), "
                         "whose moments.npz is read or measured into it")

    start = time.perf_counter()
    setting = rungs.Setting(args.alpha_p, args.ema)
    a_bar, c_bar = moments(rungs.point_config("r1", setting, 0.1, 0, 2 * args.epochs, dataset="cifar10"), args.ladder)
    spectra = mode_spectra(c_bar, a_bar - c_bar)
    lam, nu = np.clip(spectra["lam"], 1e-12, None), np.clip(spectra["nu"], 0, None)
    eigvals, basis = np.linalg.eigh(c_bar)
    aug = basis.T @ (a_bar - c_bar) @ basis
    a_commuting = c_bar + basis @ np.diag(np.diag(aug)) @ basis.T
    a_max = float(np.linalg.eigvalsh(a_bar)[-1])
    wds = np.array([float(f"{w:.3g}") for w in np.geomspace(*DEFAULT_RANGE, DEFAULT_WDS)])
    steps = 175 * args.epochs  # 45,000 training images at batch 256
    out = {"ladder": str(args.ladder), "alpha_p": args.alpha_p, "ema": args.ema, "weight_decays": wds.tolist(),
           "commutator": spectra["commutator"], "off_diagonal": spectra["off_diagonal"],
           "staircase": surviving_modes(wds, lam, nu).tolist(), "seeds": {}}
    for seed in range(args.seeds):
        config = rungs.point_config("r1", setting, 0.1, seed, 2 * args.epochs, dataset="cifar10")
        w0, wp0 = initial_weights(config, 3, 10)
        common = dict(lr=config["lr"], momentum=config["momentum"], weight_decay=wds, alpha_p=args.alpha_p,
                      ema=args.ema)
        real = population_sgd(a_bar, c_bar, w0, wp0, steps=args.long, record=(steps, args.long), **common)
        commuting = population_sgd(a_commuting, c_bar, w0, wp0, steps=args.long, record=(args.long,), **common)
        out["seeds"][seed] = {
            "real_run_length": surviving_count(real["singular_values"][0], wds, a_max).tolist(),
            "real_long": surviving_count(real["singular_values"][1], wds, a_max).tolist(),
            "commuting_long": surviving_count(commuting["singular_values"][0], wds, a_max).tolist()}
    out["steps"], out["long_steps"] = steps, args.long
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/ladder_decomposition.py", main))
