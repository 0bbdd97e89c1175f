"""Issue 21's convergence criterion on R1, measured: does W's spectrum move less than a set fraction over a
doubling of the length? Two readings, printed as one JSON object:
  runs       every (setting, weight decay) whose main runs were continued to 2× (`ssldyn ladder
             --check-seeds K`): seeds whose count changed, and the seeds' mean ± sd of σ²_2×/σ²_1× − 1 for each
             direction kept at both lengths (`analysis.ladder.doubling_drift`);
  recursion  the population recursion (no batch noise) from seed 0's own W, W_p on the ladder's moments, read
             at 1, 2, 4, … × the runs' length: the count, the largest |σ²_2L/σ²_L − 1| of the kept directions
             over each doubling, and `values_settled_from` / `count_settled_from`, the first length (in
             multiples of the runs') from which every later doubling moves the kept σ² by less than --fraction
             / keeps the count (null: the last doubling still moved).
The recursion tells whether a drift the runs share is the deterministic dynamics still on its way (then it
settles at a longer length) or SGD's: each runs entry also gives `off_fixed_point`, at 1× and 2×, the largest
|seeds' mean σ² / the recursion's σ² at its last reading − 1| over the directions both keep.

    python benchmarks/ladder_convergence.py figures/ladder/r1.csv runs/ladder-r1 [--doublings 4] [--fraction 0.1]
"""
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from ssldyn.args import count, positive_float  # noqa: E402
from ssldyn.errors import Parser, report_errors  # noqa: E402


def _multiple(reading):
    """A reading's length in multiples of the runs' (reading i is 2^i ×); None stays None (never settled)."""
    return None if reading is None else 2**reading


def main(argv=None) -> int:
    from analysis.ladder import VALUE_FRACTION, doubling_drift, kept_drift, ladder_csv, main_length, settled_from
    from deep.ladder import rungs
    from deep.ladder.runner import initial_weights, moments, movement, read_rows
    from linear_dynamics.population import population_sgd, surviving_count

    parser = Parser(prog="python benchmarks/ladder_convergence.py", description=__doc__.splitlines()[0])
    parser.add_argument("ladder", type=Path, help="an R1 ladder directory (ssldyn ladder --out) or its ladder.csv")
    parser.add_argument("moments", type=Path, help="a ladder directory whose moments.npz the recursion reads "
                        "(measured the same way, CIFAR-10, a few seconds, when it has none or does not exist)")
    parser.add_argument("--doublings", type=count(12), default=4, help="recursion read at 1 … 2^D × the length")
    parser.add_argument("--fraction", type=positive_float, default=VALUE_FRACTION)
    args = parser.parse_args(argv)
    csv_path = ladder_csv(args.ladder)
    if csv_path is None:
        parser.error(f"{args.ladder} is neither a ladder directory nor a ladder CSV")
    if args.moments.exists() and not args.moments.is_dir():
        parser.error(f"{args.moments} is not a directory: give a ladder directory (its moments.npz is read; "
                     "measured when it has none)")
    rows = read_rows(csv_path)
    if {r["rung"] for r in rows} != {"r1"}:
        parser.error(f"{csv_path}: the criterion is read on R1 (the squared-error rung), got rungs "
                     f"{sorted({r['rung'] for r in rows})}")
    start = time.perf_counter()
    main = main_length(rows)
    first = main[0]
    a_bar, c_bar = moments(rungs.point_config("r1", rungs.Setting(1.0, 0.0), 0.1, 0, 2 * first["epochs"],
                                              dataset="cifar10"), args.moments)
    a_max = float(np.linalg.eigvalsh(a_bar)[-1])
    wds = np.array(sorted({float(r["weight_decay"]) for r in main}))
    lengths = [first["steps"] * 2**k for k in range(args.doublings + 1)]
    recursion, last = [], {}
    for name in dict.fromkeys(r["setting"] for r in main):
        row = next(r for r in main if r["setting"] == name)
        setting = rungs.Setting(row["predictor_lr_mult"], row["ema"])
        config = rungs.point_config("r1", setting, 0.1, 0, 2 * row["epochs"], dataset="cifar10")
        w0, wp0 = initial_weights(config, 3, 10)
        sim = population_sgd(a_bar, c_bar, w0, wp0, lr=row["lr"], momentum=config["momentum"], weight_decay=wds,
                             alpha_p=setting.predictor_lr_mult, ema=setting.ema, steps=lengths[-1], record=lengths)
        sv2 = sim["singular_values"] ** 2  # (lengths, wds, directions)
        for j, wd in enumerate(wds):
            counts = [int(surviving_count(np.sqrt(sv2[i, j]), wd, a_max)) for i in range(len(lengths))]
            moved = [movement(sv2[i, j], sv2[i + 1, j], min(counts[i], counts[i + 1])) for i in range(len(lengths) - 1)]
            changed = [0.0 if counts[i] == counts[i + 1] else math.inf for i in range(len(lengths) - 1)]
            last[(name, float(wd))] = (counts[-1], sv2[-1, j])
            recursion.append({
                "setting": name, "weight_decay": float(wd), "counts": counts, "moved": [round(m, 4) for m in moved],
                "first_doubling_drift": kept_drift(sv2[0, j], sv2[1, j], min(counts[:2])).round(4).tolist(),
                "values_settled_from": _multiple(settled_from(moved, args.fraction)),
                "count_settled_from": _multiple(settled_from(changed, args.fraction))})
    runs = doubling_drift(rows, args.fraction)
    for entry in runs:
        fixed_count, fixed = last[(entry["setting"], entry["weight_decay"])]
        kept = min(entry["kept"], fixed_count)
        entry["off_fixed_point"] = [round(movement(fixed, np.asarray(mean), kept), 4)
                                    for mean in (entry["mean_sv2_1x"], entry["mean_sv2_2x"])]
    out = {"ladder": str(csv_path), "fraction": args.fraction, "runs": runs, "recursion": recursion}
    out["lengths"] = lengths
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/ladder_convergence.py", main))
