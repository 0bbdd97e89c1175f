"""`ssldyn ladder`: one rung of the ladder (issue 21) swept over weight decay × α_p × EMA × seeds."""
from pathlib import Path

from ssldyn.args import count, positive_float, unit_interval, writable_dir

from deep.ladder import rungs

DEFAULT_RANGE = (0.07, 5.0)
DEFAULT_WDS = 10
DEFAULT_EPOCHS = 6


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ladder", help="the linear theory on real images, one assumption at a time (rungs R1, R2)",
        description="Trains the rung's linear network (R1: the theory's squared-error loss; R2: BYOL's cosine "
                    "loss) on CIFAR-10 at every weight decay, α_p, EMA rate and seed; counts the directions W "
                    "keeps and writes them beside the theory's unfitted predictions (the per-mode staircase from "
                    "the data's covariances, and the population recursion from the run's own start) to "
                    "OUT/ladder.csv, with OUT/staircase.csv and OUT/moments.npz. Resumable: rows already in "
                    "ladder.csv are not retrained. The figure: `ssldyn figures ladder` on figures/ladder/.")
    parser.add_argument("--rung", default="r1", choices=tuple(rungs.RUNGS), help="r1 (default) or r2")
    parser.add_argument("--dataset", default="cifar10",
                        help="cifar10 (default) or fashion-mnist: the cpu preset holds out 5,000 training images")
    parser.add_argument("--data-root", help="where the dataset lives (default: the dataset's own default)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--out", type=writable_dir, metavar="DIR", help="default runs/ladder-<rung>")
    parser.add_argument("--seeds", type=count(1000), default=3, metavar="K", help="seeds 0..K-1 (default 3)")
    parser.add_argument("--alpha-p", nargs="+", type=positive_float, default=list(rungs.ALPHAS), metavar="A",
                        help="predictor lr ratios (default 0.3 1 3)")
    parser.add_argument("--ema", nargs="+", type=unit_interval, default=list(rungs.EMAS), metavar="M",
                        help="EMA rates, 0 = SimSiam (default 0 0.99)")
    parser.add_argument("--wd-range", nargs=2, type=positive_float, default=list(DEFAULT_RANGE),
                        metavar=("LOW", "HIGH"), help="weight decays, log-spaced (default 0.07 5)")
    parser.add_argument("--wds", type=count(1000), default=DEFAULT_WDS, metavar="N",
                        help="how many weight decays (default 10; at least 3)")
    parser.add_argument("--epochs", type=count(10**5), default=DEFAULT_EPOCHS, metavar="E",
                        help="length of every run (default 6 = 1,050 steps at lr 0.005; even, so that half length is exact)")
    parser.add_argument("--lr", type=positive_float, metavar="LR",
                        help="another lr than the rung's 0.005 (the unit-free test: R1's thresholds should not move "
                             "with it; give a separate --out)")
    parser.add_argument("--no-check", action="store_true", help="skip continuing the first seed's runs to 2E")
    parser.add_argument("--check-seeds", type=count(1000), default=1, metavar="K",
                        help="continue the runs of the first K seeds to 2E (default 1; at most --seeds)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run_ladder)


def run_ladder(args) -> int:
    import numpy as np

    from analysis.ladder import agreement, with_relative_modes
    from deep.collapse_map.bisection import round_sig
    from deep.collapse_map.report import write_rows
    from deep.ladder.runner import sweep
    from deep.train import resolve_device
    from ssldyn.args import out_or_default
    from ssldyn.output import emit, strict_json

    low, high = args.wd_range
    if not low < high:
        raise ValueError(f"argument --wd-range: LOW must be below HIGH, got {low:g} {high:g}")
    from deep.config import check_value

    for weight_decay in (low, high):  # past a run config's range: one line before any point trains
        try:
            check_value("weight_decay", weight_decay)
        except ValueError as err:
            raise ValueError(f"argument --wd-range: {err}") from None
    if args.wds < 3:
        raise ValueError(f"argument --wds: needs at least 3 weight decays, got {args.wds}")
    if args.epochs % 2:
        raise ValueError(f"argument --epochs: must be even (the run is also read at half length), got {args.epochs}")
    if args.no_check and args.check_seeds != 1:
        raise ValueError("argument --check-seeds: nothing is checked with --no-check; drop one of the two")
    if args.check_seeds > args.seeds:
        raise ValueError(f"argument --check-seeds: at most --seeds ({args.seeds}), got {args.check_seeds}")
    out = Path(out_or_default(args.out, f"runs/ladder-{args.rung}"))
    weight_decays = [round_sig(w) for w in np.geomspace(low, high, args.wds)]
    rows = sweep(args.rung, rungs.settings(args.alpha_p, args.ema), weight_decays, list(range(args.seeds)),
                 args.epochs, out=out, dataset_name=args.dataset, data_root=args.data_root,
                 device=resolve_device(args.device), check_seeds=0 if args.no_check else args.check_seeds, lr=args.lr)
    main = [r for r in rows if r["epochs"] == args.epochs]
    if rungs.RUNGS[args.rung]["loss"] == "l2":
        summary = agreement(main)
        lines = [f"{s['setting']}: largest miss {s['largest_miss']:g} modes against the staircase, "
                 f"{s['population_largest_miss']:g} against the population recursion (null: "
                 f"{s['null_largest_miss']:g})" for s in summary]
    else:  # no prediction in these units: the counts against W's largest direction, per weight decay
        summary = agreement(with_relative_modes(main))
        lines = [f"{args.rung}: the theory makes no prediction for the {rungs.RUNGS[args.rung]['loss']} loss; "
                 "agreement.csv compares its scale-free counts with the L2 model's, for reference only"]
    write_rows(out / "agreement.csv", tuple(summary[0]) if summary else ("setting",), summary)
    emit(strict_json({"rung": args.rung, "out": str(out), "agreement": summary}), args.json,
         "\n".join(lines + [f"wrote {out / 'ladder.csv'}", f"wrote {out / 'agreement.csv'}"]))
    return 0
