"""kNN top-1 of each method under `--preset cpu` on CIFAR-10, over seeds (issue 3, item 8; issue 14, item 5).

Each method is trained into OUT/<method>/seed-<s>/ exactly as `ssldyn train --method M --dataset
cifar10 --preset cpu --seeds K --out OUT/M` would (about 15 min per run on 2 CPU cores), or read from
there if a finished run with the same config is present: the same resumable plan as `ssldyn ablate`
(`deep.ablate.runner`), so an interrupted benchmark continues where it stopped. The number is the
test set's weighted kNN top-1, measured once after the last epoch (the preset monitors a held-out
validation set during training); the target (BYOL ≥ 50%) applies to the mean over the seeds. The
last line is one JSON object: {method: {"test_knn_top1": {"mean", "std", "n", "values"}, "target",
"meets_target", "seeds", "runs", "actions"}}.

    python benchmarks/cpu_preset_knn.py [--methods byol moco ...] [--seeds 3] [--out runs/cpu-seeds] [--data-root PATH]
"""
import json
import sys
from pathlib import Path

from deep import config as config_module, rundir
from deep.ablate.runner import FINISHED, execute, plan
from deep.ablate.sweeps import Variant
from deep.methods import METHODS
from deep.seeds import mean_pm_std, spread
from ssldyn.args import count
from ssldyn.errors import Parser, report_errors

TARGETS = {"byol": 50.0}  # issue 3, item 8; issue 14, item 5: the seeds' mean test kNN top-1 (%) after 10 epochs


def main() -> None:
    parser = Parser(prog="python benchmarks/cpu_preset_knn.py", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["byol"], choices=tuple(METHODS),
                        help="methods to train or read (default: byol)")
    parser.add_argument("--seeds", type=count(1000), default=3, help="seeds per method (default 3)")
    parser.add_argument("--out", default="runs/cpu-seeds", help="OUT/<method>/seed-<s>/ per run")
    parser.add_argument("--data-root", default=None, help="CIFAR-10 location (default: the dataset's own)")
    parser.add_argument("--threads", type=count(1024), default=None,
                        help="fixed torch threads (default: follow the machine's load, deep.threads)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")

    try:
        configs = [(Variant(m, m, m), config_module.resolve(m, "cifar10", preset="cpu", data_root=args.data_root,
                                                            device="cpu"))
                   for m in args.methods]
        out = Path(args.out)
        tasks = plan(configs, out, args.seeds)  # refuses a run directory that holds another config
        out.mkdir(parents=True, exist_ok=True)
        outcomes = execute(tasks, threads=args.threads)
    except (ValueError, OSError) as err:  # missing data, a foreign run in --out: one line, exit 2
        parser.error(str(err))
    results = {}
    for method in args.methods:
        mine = [t for t in tasks if t.variant == method]
        summaries = [json.loads((t.run_dir / rundir.SUMMARY).read_text())
                     if outcomes[t.name]["status"] == FINISHED else {} for t in mine]
        knn = spread([s.get("test_knn_top1") for s in summaries])
        target = TARGETS.get(method)
        results[method] = {"test_knn_top1": knn, "target": target,
                           "meets_target": None if target is None or knn["mean"] is None else knn["mean"] >= target,
                           "seeds": [t.config["seed"] for t in mine], "runs": [str(t.run_dir) for t in mine],
                           "actions": [t.action for t in mine]}
        print(f"{method:12s} test kNN top-1 {mean_pm_std(knn, unit='%')}"
              + (f"; target {target:g}% on the mean" if target else ""))
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(report_errors("python benchmarks/cpu_preset_knn.py", main))
