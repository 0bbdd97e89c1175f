"""The unit-free test of a ladder rung (issues 20 item 5, 21): the same setting at another lr. Under the
squared-error loss (R1) the count at a weight decay should not move with the lr; under the cosine loss
(R2) SGD's scale invariance predicts it follows lr·wd (`analysis.ladder.lr_scaling`). Prints one JSON
object: for each scaling, the largest miss (modes) between the two ladders' seed-mean counts.

    python benchmarks/ladder_lr.py runs/ladder-r1 runs/ladder-r1-lr0.0025 [--setting alpha1-ema0]
    python benchmarks/ladder_lr.py figures/ladder/r1.csv figures/ladder/r1_lr0.0025.csv   # the committed copies
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ssldyn.errors import Parser, report_errors  # noqa: E402


def main(argv=None) -> int:
    from analysis.ladder import lr_scaling, main_length, with_relative_modes
    from deep.ladder.rungs import RUNGS
    from deep.ladder.runner import read_rows

    parser = Parser(prog="python benchmarks/ladder_lr.py", description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a ladder directory (ssldyn ladder --out) or its ladder.csv")
    parser.add_argument("other", type=Path, help="the same rung at another --lr (directory or CSV)")
    parser.add_argument("--setting", default="alpha1-ema0")
    args = parser.parse_args(argv)
    ladders = []
    for path in (args.reference, args.other):
        csv_path = path / "ladder.csv" if path.is_dir() else path
        if not csv_path.is_file():
            parser.error(f"{path} is neither a ladder directory nor a ladder CSV")
        rows = [r for r in main_length(read_rows(csv_path)) if r["setting"] == args.setting]
        if not rows:
            parser.error(f"{path}: no rows of setting {args.setting}")
        ladders.append(with_relative_modes(rows) if RUNGS[rows[0]["rung"]]["loss"] != "l2" else rows)
    reference, other = ladders
    seeds = {r["seed"] for r in other}
    reference = [r for r in reference if r["seed"] in seeds]  # the same seeds on both sides
    ratio = other[0]["lr"] / reference[0]["lr"]
    result = lr_scaling(reference, other, ratio)
    result.update(rung=other[0]["rung"], setting=args.setting, seeds=sorted(seeds),
                  reference_lr=reference[0]["lr"], other_lr=other[0]["lr"],
                  reference_steps=reference[0]["steps"], other_steps=other[0]["steps"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/ladder_lr.py", main))
