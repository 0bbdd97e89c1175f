"""`ssldyn ablate NAME`: one of the thesis' ablations as a resumable sweep, with its figure and summary.

torch, matplotlib and the analysis layer are imported inside the handler only.
"""
from ssldyn.args import count, writable_dir

from deep.ablate.sweeps import ABLATIONS


def register(subparsers) -> None:
    """Add `ablate` to the `ssldyn` parser."""
    ablate = subparsers.add_parser(
        "ablate", help="the thesis' ablations as resumable sweeps, with their figure and verdicts (thesis 4.6-4.7)",
        description="Train every variant of an ablation into OUT/<variant>/ (finished runs are skipped, "
                    "interrupted ones resumed), then write OUT/NAME.png, OUT/NAME.csv and OUT/summary.md. "
                    + " ".join(f"{name}: {a.title}." for name, a in ABLATIONS.items()))
    ablate.add_argument("name", choices=tuple(ABLATIONS), metavar="NAME", help=", ".join(ABLATIONS))
    ablate.add_argument("--preset", default="cpu", help="smoke, cpu or thesis (default: cpu)")
    ablate.add_argument("--out", type=writable_dir, metavar="DIR", help="sweep directory (default: runs/ablate-NAME)")
    ablate.add_argument("--jobs", type=count(64), default=1, metavar="N",
                        help="variants trained at once, in separate processes (default 1; more only helps with "
                             "more CPU cores than this machine's, or a GPU with room for several runs)")
    ablate.add_argument("--seeds", type=count(1000), default=1, metavar="K",
                        help="runs per variant, seeds s..s+K-1 (s: --set seed, default 0), in OUT/<variant>/seed-<s>/; "
                             "reported as mean ± std with every seed's value (default 1)")
    ablate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one hyperparameter of every variant (repeatable); not the swept one")
    ablate.add_argument("--dataset", default="cifar10", help="cifar10, fashion-mnist or synthetic (default: cifar10)")
    ablate.add_argument("--data-root", help="where the dataset lives (default: the dataset's own default)")
    ablate.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    ablate.add_argument("--tensorboard", action="store_true",
                        help="also write each run's metrics as TensorBoard scalars in its RUN/tensorboard/ (needs "
                             "pip install -e '.[tensorboard]')")
    ablate.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ablate.set_defaults(func=run_ablate)


def run_ablate(args) -> int:
    from pathlib import Path

    from ssldyn.args import out_or_default
    from ssldyn.output import emit, strict_json

    from deep.ablate.runner import run_ablation
    from deep.config import parse_overrides
    from deep.seeds import mean_pm_std

    out = out_or_default(args.out, f"runs/ablate-{args.name}")
    summary = run_ablation(args.name, out, preset=args.preset, dataset=args.dataset,
                           overrides=parse_overrides(args.overrides), data_root=args.data_root,
                           device=args.device, jobs=args.jobs, seeds=args.seeds, tensorboard=args.tensorboard)
    lines = [f"{r['variant']}: {', '.join(s['action'] for s in r['seeds'])} -> {r['status']}, {r['epochs']} epochs, "
             f"kNN top-1 last {mean_pm_std(r['knn_top1_last'], unit='%')}, test {mean_pm_std(r['test_knn_top1'], unit='%')}, "
             f"std {mean_pm_std(r['std_last'], 3)}, {r['collapse_status']}"
             for r in summary["variants"]]
    lines += [f"{x['hypothesis']}: {x['outcome']} ({x['observation']})" for x in summary["verdicts"]]
    lines += [f"wrote {Path(f)}" for f in summary["files"]]
    emit(strict_json(summary), args.json, "\n".join(lines))
    return 0
