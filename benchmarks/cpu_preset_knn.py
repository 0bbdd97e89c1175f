"""kNN top-1 of each method under `--preset cpu` on CIFAR-10 (issue 3, item 8; thesis Fig. 4.4).

Each method is trained into OUT/<method>/ exactly as `ssldyn train --method M --dataset cifar10
--preset cpu` would (about 15 min per method on 2 CPU cores), or taken from there if a finished
run with the same config is already present: the same resumable plan as `ssldyn ablate`
(`deep.ablate.runner`), so pointing --out at `runs/ablate-methods` reuses that sweep's runs, and
an interrupted benchmark continues where it stopped. The target (BYOL >= 50% after its 10
epochs) is checked on the last epoch's kNN, not the best one. The last line is one JSON object:
{method: {"knn_top1_last", "knn_top1_best", "best_epoch", "epochs", "img_per_s", "target", "meets_target"}}.

    python benchmarks/cpu_preset_knn.py [--methods byol moco ...] [--out runs/bench-cpu] [--data-root PATH]
"""
import argparse
import json
from pathlib import Path

from deep import config as config_module, rundir
from deep.ablate.runner import execute, plan
from deep.ablate.sweeps import Variant
from deep.methods import METHODS

TARGETS = {"byol": 50.0}  # issue 3, item 8: kNN top-1 (%) after the cpu preset's 10 epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["byol"], choices=tuple(METHODS),
                        help="methods to train or read (default: byol)")
    parser.add_argument("--out", default="runs/bench-cpu", help="one run directory per method under it")
    parser.add_argument("--data-root", default=None, help="CIFAR-10 location (default: the dataset's own)")
    args = parser.parse_args()

    try:
        configs = [(Variant(m, m, m), config_module.resolve(m, "cifar10", preset="cpu", data_root=args.data_root,
                                                            device="cpu"))
                   for m in args.methods]
        out = Path(args.out)
        tasks = plan(configs, out)  # refuses a run directory that holds another config
        out.mkdir(parents=True, exist_ok=True)
        outcomes = execute(tasks)
    except (ValueError, OSError) as err:  # missing data, a foreign run in --out: one line, exit 2
        parser.error(str(err))
    results = {}
    for task in tasks:
        finished = outcomes[task.name]["status"] == "finished"
        summary = json.loads((task.run_dir / rundir.SUMMARY).read_text()) if finished else {}
        target = TARGETS.get(task.name)
        last = summary.get("knn_top1_last")
        results[task.name] = {"knn_top1_last": last, "knn_top1_best": summary.get("knn_top1_best"),
                              "best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"),
                              "img_per_s": summary.get("img_per_s"), "target": target,
                              "meets_target": None if target is None or last is None else last >= target,
                              "run": str(task.run_dir), "action": task.action}
        print(f"{task.name:12s} kNN top-1 last {_pct(last)}, best {_pct(summary.get('knn_top1_best'))} "
              f"(epoch {summary.get('best_epoch')}), {task.action}" + (f"; target {target:g}%" if target else ""))
    print(json.dumps(results))


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


if __name__ == "__main__":
    main()
