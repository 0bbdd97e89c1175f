"""Subcommands of `ssldyn` provided by the analysis package: `analyze` and `hypotheses`.

Nothing heavy at import: the analysis modules (matplotlib, scipy, torch for SGD) load in the handlers.
"""
from ssldyn.args import existing_path, nonnegative_float
from ssldyn.output import emit, strict_json


def register(subparsers) -> None:
    """Add this package's subcommands to the `ssldyn` parser."""
    analyze = subparsers.add_parser(
        "analyze", help="predictor panels (thesis Fig. 4.8), collapse curves and H3/H4 verdicts of one run",
        description="Reads RUN/config.json, RUN/metrics.jsonl and RUN/snapshots/*.npz (predictor linear, "
                    "directpred or directcopy); writes predictor.png, collapse.png, their CSVs and analysis.md into RUN.")
    analyze.add_argument("run", type=existing_path, metavar="RUN", help="a run directory written by `ssldyn train`")
    analyze.add_argument("--sigma2", type=nonnegative_float, default=0.0,
                         help="augmentation variance σ² used to place the run's weight decay against η* (default 0)")
    analyze.add_argument("--json", action="store_true", help="print one JSON object with the key numbers and verdicts")
    analyze.set_defaults(func=_analyze)

    hyp = subparsers.add_parser(
        "hypotheses", help="H1–H7 (SPEC §5) on the linear model and on the given deep runs",
        description="Checks each hypothesis on the linear model (matrix flow, minibatch SGD, eigenvalue ODE) "
                    "and on deep runs matched by their config; prints prediction, observation and verdict.")
    hyp.add_argument("--runs", nargs="+", type=existing_path, default=[], metavar="DIR",
                     help="deep run directories, collapse-map directories (with thresholds.csv), ladder directories "
                          "(with ladder.csv) or ladder CSVs (figures/ladder/r1.csv), to test as well")
    hyp.add_argument("--no-sgd", action="store_true", help="skip the minibatch-SGD runs of the linear model")
    hyp.add_argument("--sigma2", type=nonnegative_float, default=0.0,
                     help="σ² for placing deep runs' weight decay against η* (default 0: the largest η*, 1/4)")
    hyp.add_argument("--json", action="store_true", help="print one JSON object")
    hyp.set_defaults(func=_hypotheses)


def _analyze(args) -> int:
    from analysis.report import analyze_run

    summary = analyze_run(args.run, sigma2=args.sigma2)
    if args.json:
        emit(strict_json(summary), True)
        return 0
    lines = [f"wrote {path}" for path in summary["files"]]
    lines += [f"{h}: {x['outcome']} — {x['observation']}" for h, x in summary["verdicts"].items()]
    c = summary["collapse"]
    lines.append(f"collapse: {c['status']} (std {c['std_last']:.3g}, effective rank {c['effective_rank_last']:.3g}, "
                 f"epoch {c['epochs']})")
    emit(summary, False, "\n".join(lines))
    return 0


def _hypotheses(args) -> int:
    from analysis.collapse_map import is_map, map_verdicts, read_checks, read_thresholds
    from analysis.deep_hypotheses import deep_verdicts
    from analysis.hypotheses import summarize
    from analysis.ladder import is_ladder, ladder_csv, ladder_verdicts
    from analysis.linear_hypotheses import linear_verdicts
    from analysis.lr_test import has_lr_test, read_lr_test, read_lr_test_csv
    from analysis.lr_test import verdicts as lr_test_verdicts
    from analysis.rundir import load_run
    from deep.ladder.runner import read_rows

    # bad input fails before the slow part: a run directory, a collapse map (`ssldyn collapse-map`) or a
    # ladder (`ssldyn ladder`)
    maps = [(read_thresholds(path), read_checks(path)) for path in args.runs if is_map(path)]
    ladders = [read_rows(ladder_csv(path)) for path in args.runs if is_ladder(path)]
    runs = [load_run(path, need_snapshots=False) for path in args.runs if not is_map(path) and not is_ladder(path)]
    lr_tests = [x for path in args.runs if is_map(path) and has_lr_test(path)
                for x in lr_test_verdicts(read_lr_test(read_lr_test_csv(path)))]
    linear = linear_verdicts(sgd=not args.no_sgd)
    deep = (deep_verdicts(runs, sigma2=args.sigma2) + [x for rows, checks in maps for x in map_verdicts(rows, checks)]
            + lr_tests
            + [x for rows in ladders for x in ladder_verdicts(rows)])
    result = {"summary": summarize(linear, deep), "linear": [x.as_dict() for x in linear],
              "deep": [x.as_dict() for x in deep]}
    if args.json:
        emit(strict_json(result), True)
        return 0
    lines = []
    for x in linear + deep:
        lines += [f"{x.hypothesis} [{x.setting}] {x.outcome.upper()}",
                  f"    predicted: {x.prediction}", f"    observed:  {x.observation}"]
    lines.append("")
    lines += [f"{h} {row['statement']}: linear {row['linear']}, deep {row['deep']}"
              for h, row in result["summary"].items()]
    emit(result, False, "\n".join(lines))
    return 0
